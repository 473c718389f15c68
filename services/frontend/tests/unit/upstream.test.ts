/** Upstream calls: URLs read at request time, deadlines, and errors in words. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { callUpstream, relay, UpstreamUnavailable, upstreamTimeoutMs, upstreamUrl } from "../../lib/upstream";
import { closedPort, type FakeUpstream, startFakeUpstream } from "./fakeUpstream";

const ENV_KEYS = ["BACKEND_URL", "CHATBOT_URL", "BACKEND_TIMEOUT_MS", "CHATBOT_TIMEOUT_MS"];
const saved: Record<string, string | undefined> = {};

beforeEach(() => {
  for (const key of ENV_KEYS) {
    saved[key] = process.env[key];
    delete process.env[key];
  }
});

afterEach(() => {
  for (const key of ENV_KEYS) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});

describe("upstreamUrl", () => {
  it("defaults to the in-cluster service names", () => {
    expect(upstreamUrl("backend")).toBe("http://backend.lumina.svc.cluster.local:8000");
    expect(upstreamUrl("chatbot")).toBe("http://chatbot.lumina.svc.cluster.local:8001");
  });

  it("follows the environment at call time, not at import or build time", () => {
    process.env.BACKEND_URL = "http://one:8000/";
    expect(upstreamUrl("backend")).toBe("http://one:8000");
    process.env.BACKEND_URL = "http://two:9000";
    expect(upstreamUrl("backend")).toBe("http://two:9000");
  });

  it("ignores a nonsensical timeout setting", () => {
    process.env.BACKEND_TIMEOUT_MS = "soon";
    expect(upstreamTimeoutMs("backend")).toBe(10_000);
    process.env.BACKEND_TIMEOUT_MS = "2500";
    expect(upstreamTimeoutMs("backend")).toBe(2500);
  });
});

describe("callUpstream", () => {
  let upstream: FakeUpstream;

  beforeEach(async () => {
    upstream = await startFakeUpstream();
  });

  afterEach(async () => {
    await upstream.close();
  });

  it("sends the token as a bearer header and the body as JSON", async () => {
    process.env.BACKEND_URL = upstream.url;
    upstream.answer({ status: 201, json: { id: 7 } });
    const response = await callUpstream("backend", {
      method: "POST",
      path: "/api/todos",
      token: "abc.def.ghi",
      body: { title: "Milk" },
    });
    expect(response.status).toBe(201);
    expect(upstream.requests).toHaveLength(1);
    const [sent] = upstream.requests;
    expect(sent.method).toBe("POST");
    expect(sent.url).toBe("/api/todos");
    expect(sent.headers.authorization).toBe("Bearer abc.def.ghi");
    expect(sent.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(sent.body)).toEqual({ title: "Milk" });
  });

  it("reports a service that refuses connections, naming it and its URL", async () => {
    const port = await closedPort();
    process.env.BACKEND_URL = `http://127.0.0.1:${port}`;
    const error = await callUpstream("backend", { path: "/api/todos" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamUnavailable);
    expect((error as UpstreamUnavailable).status).toBe(502);
    expect((error as UpstreamUnavailable).message).toBe(
      `The backend service at http://127.0.0.1:${port} cannot be reached (connection refused).`,
    );
  });

  it("gives up on a service that never answers instead of hanging", async () => {
    process.env.CHATBOT_URL = upstream.url;
    process.env.CHATBOT_TIMEOUT_MS = "300";
    upstream.answer({ status: 200, hang: true });
    const started = Date.now();
    const error = await callUpstream("chatbot", { method: "POST", path: "/api/chat", body: {} }).catch(
      (e: unknown) => e,
    );
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(UpstreamUnavailable);
    expect((error as UpstreamUnavailable).status).toBe(504);
    expect((error as UpstreamUnavailable).message).toBe(
      `The chatbot service at ${upstream.url} did not answer within 0.3 s.`,
    );
    expect(elapsed).toBeLessThan(3000);
  });
});

describe("relay", () => {
  it("passes JSON errors through unchanged", async () => {
    const response = await relay(
      new Response(JSON.stringify({ detail: "Todo not found" }), {
        status: 404,
        headers: { "content-type": "application/json" },
      }),
    );
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: "Todo not found" });
  });

  it("wraps an HTML error page into a readable detail", async () => {
    const response = await relay(new Response("<h1>Bad Gateway</h1>", { status: 502 }));
    expect(response.status).toBe(502);
    expect(await response.json()).toEqual({
      detail: "Unexpected answer from upstream (HTTP 502: <h1>Bad Gateway</h1>).",
    });
  });

  it("keeps Retry-After, so a busy or rate-limited backend can say when to come back", async () => {
    const busy = await relay(
      new Response(JSON.stringify({ detail: "busy" }), {
        status: 503,
        headers: { "content-type": "application/json", "retry-after": "3" },
      }),
    );
    expect(busy.status).toBe(503);
    expect(busy.headers.get("retry-after")).toBe("3");
    const page = await relay(new Response("Service Unavailable", { status: 503, headers: { "retry-after": "7" } }));
    expect(page.headers.get("retry-after")).toBe("7");
    const plain = await relay(new Response(JSON.stringify({}), { status: 200, headers: { "content-type": "application/json" } }));
    expect(plain.headers.get("retry-after")).toBeNull();
  });

  it("keeps 204 bodiless", async () => {
    const response = await relay(new Response(null, { status: 204 }));
    expect(response.status).toBe(204);
    expect(await response.text()).toBe("");
  });
});
