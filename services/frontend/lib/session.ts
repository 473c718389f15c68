/**
 * The signed-in user's backend JWT, kept in an httpOnly cookie.
 *
 * Only route handlers read or write it; client components never see the token, so a
 * script injected into the page cannot steal it.
 */
import type { NextRequest, NextResponse } from "next/server";

export const SESSION_COOKIE = "lumina_session";

/** The token from the request's session cookie, or undefined when signed out. */
export function sessionToken(request: NextRequest): string | undefined {
  const value = request.cookies.get(SESSION_COOKIE)?.value;
  return value ? value : undefined;
}

/** Seconds until the JWT's `exp` claim, or undefined if it has none that can be read. */
export function secondsUntilExpiry(token: string, nowMs: number = Date.now()): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
    if (payload && typeof payload === "object" && "exp" in payload && typeof payload.exp === "number") {
      return Math.max(0, Math.floor(payload.exp - nowMs / 1000));
    }
  } catch {
    // Not our business to validate the token (the backend does); just skip the max-age.
  }
  return undefined;
}

/** Marks the cookie Secure only when the browser reached us over HTTPS (NodePort is plain HTTP). */
function isHttps(request: NextRequest): boolean {
  const forwarded = request.headers.get("x-forwarded-proto");
  if (forwarded) return forwarded.split(",")[0].trim() === "https";
  return request.nextUrl.protocol === "https:";
}

/** Stores the token; the cookie lives no longer than the token itself. */
export function setSession(response: NextResponse, request: NextRequest, token: string): void {
  response.cookies.set({
    name: SESSION_COOKIE,
    value: token,
    httpOnly: true,
    sameSite: "lax",
    secure: isHttps(request),
    path: "/",
    maxAge: secondsUntilExpiry(token),
  });
}

/** Removes the token (sign-out, or the backend said it is no longer valid). */
export function clearSession(response: NextResponse, request: NextRequest): void {
  response.cookies.set({
    name: SESSION_COOKIE,
    value: "",
    httpOnly: true,
    sameSite: "lax",
    secure: isHttps(request),
    path: "/",
    maxAge: 0,
  });
}
