/**
 * Calls from the frontend's route handlers to the backend and chatbot services.
 *
 * Every call has a deadline and every failure becomes a JSON error whose `detail`
 * says in words which service failed and how, so the browser never hangs on a dead
 * upstream and never shows a bare "fetch failed".
 */
import { NextResponse } from "next/server";
import { request as undiciRequest } from "undici";

export type UpstreamName = "backend" | "chatbot";

const DEFAULT_URLS: Record<UpstreamName, string> = {
  backend: "http://backend.lumina.svc.cluster.local:8000",
  chatbot: "http://chatbot.lumina.svc.cluster.local:8001",
};

const URL_ENV: Record<UpstreamName, string> = {
  backend: "BACKEND_URL",
  chatbot: "CHATBOT_URL",
};

// A model reply can take tens of seconds; a CRUD call that slow means the backend is stuck.
const DEFAULT_TIMEOUT_MS: Record<UpstreamName, number> = {
  backend: 10_000,
  chatbot: 60_000,
};

const TIMEOUT_ENV: Record<UpstreamName, string> = {
  backend: "BACKEND_TIMEOUT_MS",
  chatbot: "CHATBOT_TIMEOUT_MS",
};

/** Base URL of an upstream, read from the environment on every call (never baked at build). */
export function upstreamUrl(name: UpstreamName): string {
  const raw = process.env[URL_ENV[name]]?.trim();
  return (raw || DEFAULT_URLS[name]).replace(/\/+$/, "");
}

/** Deadline for one call to an upstream, in milliseconds. */
export function upstreamTimeoutMs(name: UpstreamName): number {
  const raw = process.env[TIMEOUT_ENV[name]];
  const parsed = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(parsed) && parsed > 0 ? parsed : DEFAULT_TIMEOUT_MS[name];
}

/** An upstream that could not be reached or did not answer in time. */
export class UpstreamUnavailable extends Error {
  constructor(
    readonly upstream: UpstreamName,
    readonly status: 502 | 504,
    message: string,
  ) {
    super(message);
    this.name = "UpstreamUnavailable";
  }
}

export interface UpstreamRequest {
  method?: string;
  /** Path below the upstream's base URL, with query string, e.g. `/api/todos?done=true`. */
  path: string;
  token?: string;
  body?: unknown;
  /** Overrides the upstream's usual deadline, e.g. for a quick readiness probe. */
  timeoutMs?: number;
  /**
   * Whose request this is, as `X-Forwarded-For` (see `clientAddress` in proxy.ts): the
   * backend limits sign-in attempts per client by it, and believes it from this server only.
   */
  forwardedFor?: string;
}

/**
 * An upstream's answer with its body read: status, one header by name, and the text.
 * The body is read inside the deadline, so a stalled body is a 504 too.
 */
export interface UpstreamAnswer {
  status: number;
  /** 2xx, as fetch's `Response.ok`. */
  ok: boolean;
  header(name: string): string | null;
  text: string;
  /** The body parsed as JSON; rejects when it is not. */
  json(): Promise<unknown>;
}

/**
 * Sends one request upstream; throws `UpstreamUnavailable` instead of hanging or leaking a raw error.
 * `undici.request` rather than `fetch`: the profile of the frontend under the CRUD mix at
 * its 500m limit spent about a sixth of its CPU in fetch's WHATWG streams and Response
 * objects, which a JSON relay does not need.
 */
export async function callUpstream(name: UpstreamName, req: UpstreamRequest): Promise<UpstreamAnswer> {
  const base = upstreamUrl(name);
  const timeoutMs = req.timeoutMs ?? upstreamTimeoutMs(name);
  const headers: Record<string, string> = { accept: "application/json" };
  if (req.token) headers.authorization = `Bearer ${req.token}`;
  if (req.body !== undefined) headers["content-type"] = "application/json";
  if (req.forwardedFor) headers["x-forwarded-for"] = req.forwardedFor;
  try {
    const answer = await undiciRequest(`${base}${req.path}`, {
      method: (req.method ?? "GET") as "GET",
      headers,
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
      signal: AbortSignal.timeout(timeoutMs),
      maxRedirections: 0,
    });
    const text = await answer.body.text();
    const received = answer.headers;
    return {
      status: answer.statusCode,
      ok: answer.statusCode >= 200 && answer.statusCode < 300,
      json: async () => JSON.parse(text) as unknown,
      header(header: string): string | null {
        const value = received[header.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
      },
      text,
    };
  } catch (error) {
    if (isTimeout(error)) {
      throw new UpstreamUnavailable(
        name,
        504,
        `The ${name} service at ${base} did not answer within ${formatSeconds(timeoutMs)}.`,
      );
    }
    throw new UpstreamUnavailable(
      name,
      502,
      `The ${name} service at ${base} cannot be reached (${describeNetworkError(error)}).`,
    );
  }
}

/** The deadline's signal fired: fetch and undici.request both throw its reason (a DOMException). */
function isTimeout(error: unknown): boolean {
  const named = error instanceof Error || error instanceof DOMException ? error.name : "";
  return named === "TimeoutError" || named === "AbortError" || (error as { code?: string })?.code === "UND_ERR_ABORTED";
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

/** The useful part ("ECONNREFUSED", "ENOTFOUND") is the error's own code, or fetch's `cause`. */
function describeNetworkError(error: unknown): string {
  if (error instanceof Error) {
    const cause = "code" in error && error.code ? error : error.cause;
    if (cause && typeof cause === "object") {
      const code = "code" in cause ? String(cause.code) : "";
      const message = "message" in cause ? String(cause.message) : "";
      if (code === "ECONNREFUSED") return "connection refused";
      if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host name not found";
      if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection closed unexpectedly";
      if (message) return message;
      if (code) return code;
    }
    return error.message;
  }
  return String(error);
}

/** JSON error response in FastAPI's shape, so the browser parses every error the same way. */
export function errorResponse(status: number, detail: string): NextResponse {
  return NextResponse.json({ detail }, { status });
}

/**
 * Passes an upstream response through unchanged in status and JSON body, and in
 * `Retry-After` (a busy or rate-limited upstream says when to come back).
 */
export async function relay(upstream: UpstreamAnswer | Response): Promise<NextResponse> {
  if (upstream.status === 204 || upstream.status === 304) {
    return new NextResponse(null, { status: upstream.status });
  }
  // A fetch Response is still accepted (a caller holding one, and the unit tests).
  const fetched = upstream instanceof Response;
  const text = fetched ? await upstream.text() : upstream.text;
  const header = (name: string): string | null => (fetched ? upstream.headers.get(name) : upstream.header(name));
  const contentType = header("content-type") ?? "";
  const retryAfter = header("retry-after");
  let response: NextResponse;
  if (contentType.includes("application/json")) {
    response = new NextResponse(text, {
      status: upstream.status,
      headers: { "content-type": "application/json" },
    });
  } else {
    // A proxy or crash page in front of the service answered; wrap it so the UI can still say something.
    const snippet = text.trim().slice(0, 200);
    response = errorResponse(
      upstream.status >= 400 ? upstream.status : 502,
      `Unexpected answer from upstream (HTTP ${upstream.status}${snippet ? `: ${snippet}` : ""}).`,
    );
  }
  if (retryAfter) response.headers.set("retry-after", retryAfter);
  return response;
}

/** Runs a handler body, turning an unreachable upstream into a 502/504 with a readable detail. */
export async function guarded(run: () => Promise<NextResponse>): Promise<NextResponse> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof UpstreamUnavailable) {
      // Operators read this in the pod log; it carries the URL and cause, never a token.
      console.warn(`upstream unavailable: ${error.message}`);
      return errorResponse(error.status, error.message);
    }
    throw error;
  }
}
