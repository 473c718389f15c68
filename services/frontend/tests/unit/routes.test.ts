/**
 * The route handlers as the browser sees them: the session cookie's attributes, the token
 * never reaching page scripts, what goes upstream, and errors turned into words.
 * Handlers run in-process on real Request objects against a real local HTTP server
 * (see fakeUpstream.ts for why that server stands in for backend and chatbot here).
 */
import { NextRequest } from "next/server";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

import * as login from "../../app/api/auth/login/route";
import * as logout from "../../app/api/auth/logout/route";
import * as register from "../../app/api/auth/register/route";
import * as chat from "../../app/api/chat/route";
import * as chatStatus from "../../app/api/chat/status/route";
import * as health from "../../app/api/health/route";
import * as todo from "../../app/api/todos/[id]/route";
import * as todos from "../../app/api/todos/route";
import { SESSION_COOKIE } from "../../lib/session";
import { closedPort, type FakeUpstream, startFakeUpstream, tokenExpiringIn } from "./fakeUpstream";

const ORIGIN = "http://frontend.test";

function request(path: string, init: { method?: string; body?: unknown; rawBody?: string; token?: string; headers?: Record<string, string> } = {}): NextRequest {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token) headers.cookie = `${SESSION_COOKIE}=${init.token}`;
  let body: string | undefined = init.rawBody;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers["content-type"] = "application/json";
  }
  return new NextRequest(`${ORIGIN}${path}`, { method: init.method ?? "GET", headers, body });
}

function params(id: string): { params: Promise<{ id: string }> } {
  return { params: Promise.resolve({ id }) };
}

let backend: FakeUpstream;
let chatbot: FakeUpstream;

beforeAll(async () => {
  backend = await startFakeUpstream();
  chatbot = await startFakeUpstream();
});

afterAll(async () => {
  await backend.close();
  await chatbot.close();
});

beforeEach(() => {
  process.env.BACKEND_URL = backend.url;
  process.env.CHATBOT_URL = chatbot.url;
  backend.requests.length = 0;
  chatbot.requests.length = 0;
});

afterEach(() => {
  delete process.env.BACKEND_URL;
  delete process.env.CHATBOT_URL;
});

describe("GET /api/health", () => {
  it("answers ok without asking any upstream", async () => {
    const response = health.GET();
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
    expect(backend.requests).toHaveLength(0);
  });
});

describe("POST /api/auth/login", () => {
  it("keeps the token in an httpOnly, SameSite=Lax cookie and out of the body", async () => {
    const token = tokenExpiringIn(3600);
    backend.answer({ status: 200, json: { access_token: token, token_type: "bearer" } });

    const response = await login.POST(request("/api/auth/login", { method: "POST", body: { email: "a@b.io", password: "pw" } }));

    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).not.toContain(token);
    expect(JSON.parse(text)).toEqual({ signed_in: true });
    const cookie = response.headers.get("set-cookie") ?? "";
    expect(cookie).toContain(`${SESSION_COOKIE}=${token}`);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toMatch(/Secure/i);
    const maxAge = Number(/Max-Age=(\d+)/i.exec(cookie)?.[1]);
    expect(maxAge).toBeGreaterThan(3590);
    expect(maxAge).toBeLessThanOrEqual(3600);
    expect(JSON.parse(backend.requests[0].body)).toEqual({ email: "a@b.io", password: "pw" });
  });

  it("marks the cookie Secure when the browser came over HTTPS", async () => {
    backend.answer({ status: 200, json: { access_token: tokenExpiringIn(60), token_type: "bearer" } });
    const response = await login.POST(
      request("/api/auth/login", {
        method: "POST",
        body: { email: "a@b.io", password: "pw" },
        headers: { "x-forwarded-proto": "https" },
      }),
    );
    expect(response.headers.get("set-cookie")).toMatch(/Secure/i);
  });

  it("relays a refused sign-in without setting a cookie", async () => {
    backend.answer({ status: 401, json: { detail: "Invalid email or password" } });
    const response = await login.POST(request("/api/auth/login", { method: "POST", body: { email: "a@b.io", password: "x" } }));
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ detail: "Invalid email or password" });
    expect(response.headers.get("set-cookie")).toBeNull();
  });

  it("tells the backend whose sign-in it forwards, and relays a 429 with its Retry-After", async () => {
    backend.answer({
      status: 429,
      json: { detail: "Too many sign-in or sign-up attempts from this address; try again in 4 s." },
      headers: { "retry-after": "4" },
    });
    const response = await login.POST(
      request("/api/auth/login", {
        method: "POST",
        body: { email: "a@b.io", password: "x" },
        headers: { "x-forwarded-for": "203.0.113.9" },
      }),
    );
    expect(backend.requests[0].headers["x-forwarded-for"]).toBe("203.0.113.9");
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("4");
    expect(response.headers.get("set-cookie")).toBeNull();
  });

  it("says the backend is down instead of failing obscurely", async () => {
    const port = await closedPort();
    process.env.BACKEND_URL = `http://127.0.0.1:${port}`;
    const response = await login.POST(request("/api/auth/login", { method: "POST", body: { email: "a@b.io", password: "x" } }));
    expect(response.status).toBe(502);
    expect(await response.json()).toEqual({
      detail: `The backend service at http://127.0.0.1:${port} cannot be reached (connection refused).`,
    });
  });

  it("rejects a body that is not JSON before calling the backend", async () => {
    const response = await login.POST(
      request("/api/auth/login", { method: "POST", rawBody: "{email", headers: { "content-type": "application/json" } }),
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ detail: "The request body must be JSON." });
    expect(backend.requests).toHaveLength(0);
  });

  it("refuses form-encoded posts, which a cross-site HTML form could send", async () => {
    const response = await todos.POST(
      request("/api/todos", {
        method: "POST",
        token: "t.o.k",
        rawBody: '{"title":"planted"}',
        headers: { "content-type": "text/plain" },
      }),
    );
    expect(response.status).toBe(415);
    expect(await response.json()).toEqual({
      detail: "Send the request body as JSON (Content-Type: application/json).",
    });
    expect(backend.requests).toHaveLength(0);
  });
});

describe("POST /api/auth/register and /api/auth/logout", () => {
  it("relays the backend's 409 for a taken email", async () => {
    backend.answer({ status: 409, json: { detail: "Email already registered" } });
    const response = await register.POST(request("/api/auth/register", { method: "POST", body: { email: "a@b.io", password: "pw" } }));
    expect(response.status).toBe(409);
    expect(await response.json()).toEqual({ detail: "Email already registered" });
    expect(backend.requests[0].url).toBe("/api/auth/register");
  });

  it("forwards whose sign-up it is and relays a busy backend's 503 with its Retry-After", async () => {
    backend.answer({ status: 503, json: { detail: "The server is busy" }, headers: { "retry-after": "2" } });
    const response = await register.POST(
      request("/api/auth/register", {
        method: "POST",
        body: { email: "a@b.io", password: "pw" },
        headers: { "x-forwarded-for": "198.51.100.7" },
      }),
    );
    expect(backend.requests[0].headers["x-forwarded-for"]).toBe("198.51.100.7");
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("2");
  });

  it("sign-out expires the cookie", async () => {
    const response = logout.POST(request("/api/auth/logout", { method: "POST", token: "t.o.k" }));
    expect(response.status).toBe(204);
    const cookie = response.headers.get("set-cookie") ?? "";
    expect(cookie).toContain(`${SESSION_COOKIE}=;`);
    expect(cookie).toMatch(/Max-Age=0/i);
  });
});

describe("/api/todos", () => {
  it("refuses a signed-out caller without bothering the backend", async () => {
    const response = await todos.GET(request("/api/todos"));
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ detail: "You are not signed in." });
    expect(backend.requests).toHaveLength(0);
  });

  it("forwards the cookie's token and only the documented list parameters", async () => {
    backend.answer({ status: 200, json: { items: [], total: 0, limit: 10, offset: 0 } });
    const response = await todos.GET(request("/api/todos?done=true&q=milk&limit=10&offset=&admin=1", { token: "t.o.k" }));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ items: [], total: 0, limit: 10, offset: 0 });
    expect(backend.requests[0].url).toBe("/api/todos?done=true&q=milk&limit=10");
    expect(backend.requests[0].headers.authorization).toBe("Bearer t.o.k");
    expect(backend.requests[0].headers.cookie).toBeUndefined();
  });

  it("drops the session when the backend no longer accepts the token", async () => {
    backend.answer({ status: 401, json: { detail: "Could not validate credentials" } });
    const response = await todos.POST(request("/api/todos", { method: "POST", token: "old.t.k", body: { title: "x" } }));
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ detail: "Could not validate credentials" });
    expect(response.headers.get("set-cookie")).toMatch(/Max-Age=0/i);
  });

  it("relays validation errors so the page can name the field", async () => {
    const detail = [{ loc: ["body", "title"], msg: "String should have at most 200 characters", type: "string_too_long" }];
    backend.answer({ status: 422, json: { detail } });
    const response = await todos.POST(request("/api/todos", { method: "POST", token: "t.o.k", body: { title: "x".repeat(201) } }));
    expect(response.status).toBe(422);
    expect(await response.json()).toEqual({ detail });
  });
});

describe("/api/todos/[id]", () => {
  it("updates, and deletes with an empty 204", async () => {
    backend.answer((req) =>
      req.method === "DELETE" ? { status: 204 } : { status: 200, json: { id: 5, done: true } },
    );
    const patched = await todo.PATCH(request("/api/todos/5", { method: "PATCH", token: "t.o.k", body: { done: true } }), params("5"));
    expect(patched.status).toBe(200);
    expect(await patched.json()).toEqual({ id: 5, done: true });
    const deleted = await todo.DELETE(request("/api/todos/5", { method: "DELETE", token: "t.o.k" }), params("5"));
    expect(deleted.status).toBe(204);
    expect(backend.requests.map((r) => `${r.method} ${r.url} ${r.body}`)).toEqual([
      'PATCH /api/todos/5 {"done":true}',
      "DELETE /api/todos/5 ",
    ]);
  });

  it("answers 404 for an id that is not a number, so paths cannot escape to other routes", async () => {
    const response = await todo.GET(request("/api/todos/..%2Fauth%2Fme", { token: "t.o.k" }), params("../auth/me"));
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ detail: "Todo not found" });
    expect(backend.requests).toHaveLength(0);
  });
});

describe("chat", () => {
  it("forwards a message with the user's own token", async () => {
    chatbot.answer({ status: 200, json: { reply: "Added.", conversation_id: "c1" } });
    const response = await chat.POST(request("/api/chat", { method: "POST", token: "t.o.k", body: { message: "add milk" } }));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ reply: "Added.", conversation_id: "c1" });
    expect(chatbot.requests[0].url).toBe("/api/chat");
    expect(chatbot.requests[0].headers.authorization).toBe("Bearer t.o.k");
  });

  it("passes on the chatbot's reason when chat is off", async () => {
    chatbot.answer({ status: 503, json: { detail: "No model configured: OPENAI_API_KEY is not set" } });
    const response = await chat.POST(request("/api/chat", { method: "POST", token: "t.o.k", body: { message: "hi" } }));
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ detail: "No model configured: OPENAI_API_KEY is not set" });
  });

  it("status reports the chatbot's readiness reason", async () => {
    chatbot.answer({ status: 503, json: { detail: "No model configured: OPENAI_API_KEY is not set" } });
    const response = await chatStatus.GET();
    expect(await response.json()).toEqual({
      available: false,
      reason: "No model configured: OPENAI_API_KEY is not set",
    });
    expect(chatbot.requests[0].url).toBe("/ready");
  });

  it("status says chat is available when the chatbot is ready", async () => {
    chatbot.answer({ status: 200, json: { status: "ready" } });
    expect(await (await chatStatus.GET()).json()).toEqual({ available: true, reason: null });
  });

  it("status explains an unreachable chatbot", async () => {
    const port = await closedPort();
    process.env.CHATBOT_URL = `http://127.0.0.1:${port}`;
    expect(await (await chatStatus.GET()).json()).toEqual({
      available: false,
      reason: `The chatbot service at http://127.0.0.1:${port} cannot be reached (connection refused).`,
    });
  });
});
