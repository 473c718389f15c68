/**
 * The image's entry point (edge/serve.cjs): the X-Forwarded-For the app passes on is
 * the client this server can vouch for, never one a caller made up.
 *
 * The server behind the entry point is a stand-in for Next.js's standalone server.js
 * (an http.createServer that echoes the header it was handed), started for real on a
 * free port of 127.0.0.1: what is under test is the wrapping, not Next.js.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const { forwardedClient, trustedHops } = require("../../edge/forwarded.cjs") as {
  forwardedClient: (header: string | string[] | undefined, peer: string | undefined, hops: number) => string;
  trustedHops: (text: string | undefined) => number;
};
const SERVE = join(__dirname, "..", "..", "edge", "serve.cjs");

describe("forwardedClient", () => {
  it("is the socket's peer when no proxy is trusted, whatever the request says", () => {
    expect(forwardedClient(undefined, "10.0.0.7", 0)).toBe("10.0.0.7");
    expect(forwardedClient("198.18.0.1", "10.0.0.7", 0)).toBe("10.0.0.7");
    expect(forwardedClient(["1.1.1.1", "2.2.2.2"], "10.0.0.7", 0)).toBe("10.0.0.7");
  });

  it("is what the last trusted hop saw, not what the client prepended", () => {
    expect(forwardedClient("6.6.6.6, 203.0.113.9", "10.0.0.2", 1)).toBe("203.0.113.9");
    expect(forwardedClient("6.6.6.6, 203.0.113.9, 10.0.0.3", "10.0.0.2", 2)).toBe("203.0.113.9");
    // Fewer entries than trusted hops: the leftmost one there is.
    expect(forwardedClient(undefined, "10.0.0.2", 1)).toBe("10.0.0.2");
  });

  it("reads TRUSTED_PROXY_HOPS as a small whole number, else trusts nobody", () => {
    expect(trustedHops(undefined)).toBe(0);
    expect(trustedHops("1")).toBe(1);
    for (const bad of ["-1", "1.5", "many", "99"]) expect(trustedHops(bad)).toBe(0);
  });
});

const STAND_IN = `
const http = require("node:http");
const server = http.createServer((request, response) => {
  response.end(String(request.headers["x-forwarded-for"]));
});
server.listen(0, "127.0.0.1", () => console.log("port " + server.address().port));
`;

let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill();
  child = undefined;
});

async function started(env: Record<string, string>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "edge-"));
  writeFileSync(join(dir, "server.js"), STAND_IN);
  child = spawn(process.execPath, [SERVE], { cwd: dir, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  return await new Promise<number>((resolve, reject) => {
    child?.stdout?.on("data", (chunk: Buffer) => {
      const found = /port (\d+)/.exec(chunk.toString());
      if (found) resolve(Number(found[1]));
    });
    child?.on("exit", (code) => reject(new Error(`serve.cjs exited ${code}`)));
  });
}

describe("serve.cjs", () => {
  it("hands the app the socket's peer, not a client-sent X-Forwarded-For", async () => {
    const port = await started({ TRUSTED_PROXY_HOPS: "" });
    const answer = await fetch(`http://127.0.0.1:${port}/`, { headers: { "x-forwarded-for": "198.18.0.1" } });
    expect(await answer.text()).toBe("127.0.0.1");
  });

  it("believes one hop when TRUSTED_PROXY_HOPS=1", async () => {
    const port = await started({ TRUSTED_PROXY_HOPS: "1" });
    const answer = await fetch(`http://127.0.0.1:${port}/`, {
      headers: { "x-forwarded-for": "6.6.6.6, 203.0.113.9" },
    });
    expect(await answer.text()).toBe("203.0.113.9");
  });
});
