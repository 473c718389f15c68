/**
 * Shared plumbing of the route handlers under app/api: read the browser's JSON body,
 * attach the session token, forward, and relay the upstream's answer.
 */
import { type NextRequest, NextResponse } from "next/server";

import { callUpstream, errorResponse, guarded, relay, type UpstreamName } from "./upstream";
import { clearSession, sessionToken } from "./session";

export type JsonBody = { ok: true; value: unknown } | { ok: false; response: NextResponse };

/**
 * The request's JSON body, or a 415/400 saying what is wrong with it. Requiring the JSON
 * content type also means a cross-site HTML form (which can only send form or text types)
 * can never drive these handlers.
 */
export async function readJsonBody(request: NextRequest): Promise<JsonBody> {
  const contentType = request.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(contentType.trim())) {
    return { ok: false, response: errorResponse(415, "Send the request body as JSON (Content-Type: application/json).") };
  }
  try {
    return { ok: true, value: await request.json() };
  } catch {
    return { ok: false, response: errorResponse(400, "The request body must be JSON.") };
  }
}

/**
 * The browser's address as this server saw it: the one address the entry point
 * (edge/serve.cjs) put in `x-forwarded-for` before Next.js read the request — the
 * socket's peer, or with TRUSTED_PROXY_HOPS the address the last trusted proxy saw,
 * never what the client sent. It goes on to the backend's sign-in limits.
 */
export function clientAddress(request: NextRequest): string | undefined {
  const forwarded = request.headers.get("x-forwarded-for")?.trim();
  return forwarded ? forwarded.slice(-512) : undefined;
}

export interface ForwardOptions {
  method?: string;
  path: string;
  body?: unknown;
}

/**
 * Forwards a signed-in user's request with their token as `Authorization: Bearer`.
 * A 401 from upstream means the token expired or was revoked, so the cookie goes too
 * and the page can send the user to sign in again.
 */
export async function forwardAsUser(
  request: NextRequest,
  upstream: UpstreamName,
  options: ForwardOptions,
): Promise<NextResponse> {
  const token = sessionToken(request);
  if (!token) return errorResponse(401, "You are not signed in.");
  return guarded(async () => {
    const answer = await callUpstream(upstream, { ...options, token });
    const response = await relay(answer);
    if (answer.status === 401) clearSession(response, request);
    return response;
  });
}
