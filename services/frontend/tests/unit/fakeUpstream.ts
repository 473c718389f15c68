/**
 * A real HTTP server on 127.0.0.1 playing the backend or chatbot in unit tests.
 *
 * It stands in for the upstream only to observe exactly what the route handlers send
 * (headers, paths, bodies) and to produce answers that are hard to get from the real
 * services on demand (a hang, a non-JSON 502 page). The real backend is exercised
 * end to end by the browser test (tests/browser).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface Answer {
  status: number;
  json?: unknown;
  text?: string;
  contentType?: string;
  /** Never answer (to test deadlines). */
  hang?: boolean;
  /** Further response headers, e.g. Retry-After. */
  headers?: Record<string, string>;
}

export interface FakeUpstream {
  url: string;
  requests: Recorded[];
  answer: (next: Answer | ((req: Recorded) => Answer)) => void;
  close: () => Promise<void>;
}

export async function startFakeUpstream(): Promise<FakeUpstream> {
  const requests: Recorded[] = [];
  const sockets = new Set<Socket>();
  let responder: (req: Recorded) => Answer = () => ({ status: 200, json: {} });

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const recorded: Recorded = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(recorded);
      const answer = responder(recorded);
      if (answer.hang) return;
      if (answer.json !== undefined) {
        res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
        res.end(JSON.stringify(answer.json));
      } else {
        res.writeHead(answer.status, {
          ...(answer.text ? { "content-type": answer.contentType ?? "text/html" } : {}),
          ...answer.headers,
        });
        res.end(answer.text ?? "");
      }
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    answer: (next) => {
      responder = typeof next === "function" ? next : () => next;
    },
    close: async () => {
      // Hanging requests keep sockets open; destroy them so close() returns.
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on which nothing listens (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A JWT-shaped token whose payload carries `exp`; the frontend only reads, never verifies it. */
export function tokenExpiringIn(seconds: number): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + seconds;
  return `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub: "1", exp })}.c2lnbmF0dXJl`;
}
