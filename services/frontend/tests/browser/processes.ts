/**
 * Real processes for the browser test: the backend (uvicorn from $BACKEND_SRC), the
 * frontend (the standalone server laid out exactly as in the image), and a chatbot
 * stand-in. Each failure message names what is missing and how to provide it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const FRONTEND_DIR = resolve(__dirname, "../..");

export interface Started {
  url: string;
  stop: () => Promise<void>;
  output: () => string;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** Polls `url` until it answers 200, failing early with the process's output if it dies. */
async function waitUntilUp(name: string, url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited (code ${child.exitCode ?? child.signalCode}) before ${url} answered:\n${output()}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (response.ok) return;
      last = `HTTP ${response.status}: ${await response.text()}`;
    } catch (error) {
      last = String(error);
    }
    await new Promise((done) => setTimeout(done, 250));
  }
  throw new Error(`${name} did not answer ${url} with 200 within ${timeoutMs / 1000} s (last: ${last}):\n${output()}`);
}

function startProcess(name: string, command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
} {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const keep = (chunk: Buffer): void => {
    // Only the tail matters for a failure message.
    log = (log + chunk.toString("utf8")).slice(-8000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const spawnError = new Promise<never>((_, reject) =>
    child.on("error", (error) => reject(new Error(`cannot start ${name} (${command}): ${error.message}`))),
  );
  spawnError.catch(() => undefined);
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((done) => child.once("exit", () => done()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  return { child, output: () => log, stop };
}

/** The real backend: `$BACKEND_PYTHON -m uvicorn app.main:app` in `$BACKEND_SRC`, on a fresh SQLite file. */
export async function startBackend(workDir: string): Promise<Started> {
  const python = process.env.BACKEND_PYTHON;
  const source = process.env.BACKEND_SRC ?? resolve(FRONTEND_DIR, "../backend");
  if (!python) {
    throw new Error(
      "BACKEND_PYTHON is not set: point it at a Python with services/backend/requirements.txt installed " +
        "(the nox `frontend` session sets it), e.g. BACKEND_PYTHON=/path/to/venv/bin/python.",
    );
  }
  if (!existsSync(join(source, "app", "main.py"))) {
    throw new Error(`BACKEND_SRC=${source} does not contain app/main.py: set it to the services/backend directory.`);
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = startProcess("backend (uvicorn)", python, ["-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: source,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      // Next's types make NODE_ENV mandatory in ProcessEnv; uvicorn ignores it.
      NODE_ENV: "production",
      JWT_SECRET_KEY: "test-browser-flow-secret-key-0123456789abcdef",
      DATABASE_URL: `sqlite:///${join(workDir, "lumina.db")}`,
    },
  });
  await waitUntilUp("backend", `${url}/api/ready`, proc.child, proc.output, 60_000);
  return { url, stop: proc.stop, output: proc.output };
}

/**
 * Chatbot stand-in. The real chatbot needs a paid model API and its own Python
 * dependencies, neither of which the frontend's test environment has, so this small
 * server plays it at the HTTP edge, following the chatbot's contract:
 * - model off (the default, like the real chatbot without OPENAI_API_KEY): /ready and
 *   /api/chat answer 503 with the reason;
 * - model on: /api/chat acts like an agent told "add <title>": it creates that todo on
 *   the REAL backend with the bearer token it received, so the test proves the frontend
 *   forwards the signed-in user's own token, and replies in the contract's shape.
 */
// Word for word what services/chatbot answers without OPENAI_API_KEY.
const CHAT_OFF_REASON = "Chat is off: no model is configured (OPENAI_API_KEY is not set).";

export interface ChatbotStandIn extends Started {
  setModel: (on: boolean) => void;
  /** Bodies of the /api/chat requests received, in order. */
  chats: Array<{ message: string; conversation_id?: string }>;
}

export async function startChatbotStandIn(backendUrl: string): Promise<ChatbotStandIn> {
  let modelOn = false;
  const chats: ChatbotStandIn["chats"] = [];
  const reply = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.url === "/health") return reply(res, 200, { status: "ok" });
      if (!modelOn) return reply(res, 503, { detail: CHAT_OFF_REASON });
      if (req.url === "/ready") return reply(res, 200, { status: "ready" });
      if (req.url !== "/api/chat" || req.method !== "POST") return reply(res, 404, { detail: "Not Found" });
      const authorization = req.headers.authorization;
      if (!authorization?.startsWith("Bearer ")) return reply(res, 401, { detail: "Not authenticated" });
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { message: string; conversation_id?: string };
      chats.push(body);
      const title = body.message.replace(/^add\s+/i, "").trim();
      void fetch(`${backendUrl}/api/todos`, {
        method: "POST",
        headers: { authorization, "content-type": "application/json" },
        body: JSON.stringify({ title }),
      }).then(
        async (created) =>
          created.ok
            ? reply(res, 200, { reply: `Added "${title}".`, conversation_id: body.conversation_id ?? "conv-1" })
            : reply(res, 502, { detail: `backend said ${created.status}: ${await created.text()}` }),
        (error: unknown) => reply(res, 502, { detail: `backend unreachable: ${String(error)}` }),
      );
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setModel: (on) => {
      modelOn = on;
    },
    chats,
    stop: () => new Promise<void>((done) => server.close(() => done())),
    output: () => "",
  };
}

/**
 * The frontend as the image runs it: .next/standalone with .next/static and public
 * copied beside server.js, and edge/*.cjs beside them, started with `node serve.cjs`.
 */
export async function startFrontend(workDir: string, env: { BACKEND_URL: string; CHATBOT_URL: string }): Promise<Started> {
  const standalone = join(FRONTEND_DIR, ".next", "standalone");
  if (!existsSync(join(standalone, "server.js"))) {
    throw new Error(`${standalone}/server.js is missing: run \`npm run build\` first (\`npm run test:browser\` does).`);
  }
  const appDir = mkdtempSync(join(workDir, "app-"));
  cpSync(standalone, appDir, { recursive: true, verbatimSymlinks: true });
  cpSync(join(FRONTEND_DIR, ".next", "static"), join(appDir, ".next", "static"), { recursive: true });
  cpSync(join(FRONTEND_DIR, "public"), join(appDir, "public"), { recursive: true });
  for (const file of ["serve.cjs", "forwarded.cjs"]) cpSync(join(FRONTEND_DIR, "edge", file), join(appDir, file));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = startProcess("frontend (node serve.cjs)", process.execPath, ["serve.cjs"], {
    cwd: appDir,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: "production",
      NEXT_TELEMETRY_DISABLED: "1",
      HOSTNAME: "127.0.0.1",
      PORT: String(port),
      BACKEND_URL: env.BACKEND_URL,
      CHATBOT_URL: env.CHATBOT_URL,
    },
  });
  await waitUntilUp("frontend", `${url}/api/health`, proc.child, proc.output, 60_000);
  return { url, stop: proc.stop, output: proc.output };
}

export function makeWorkDir(): string {
  return mkdtempSync(join(tmpdir(), "lumina-frontend-browser-"));
}
