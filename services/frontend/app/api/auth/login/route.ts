/**
 * Sign-in: exchanges email and password for the backend's JWT and keeps the JWT in an
 * httpOnly cookie. The token is never put in the response body, so page scripts never hold it.
 */
import { type NextRequest, NextResponse } from "next/server";

import { clientAddress, readJsonBody } from "../../../../lib/proxy";
import { setSession } from "../../../../lib/session";
import { callUpstream, errorResponse, guarded, relay } from "../../../../lib/upstream";

export const dynamic = "force-dynamic";

export async function POST(request: NextRequest): Promise<NextResponse> {
  const body = await readJsonBody(request);
  if (!body.ok) return body.response;
  return guarded(async () => {
    const upstream = await callUpstream("backend", {
      method: "POST",
      path: "/api/auth/login",
      body: body.value,
      forwardedFor: clientAddress(request),
    });
    if (!upstream.ok) return relay(upstream);
    const payload: unknown = await upstream.json().catch(() => null);
    const token =
      payload && typeof payload === "object" && "access_token" in payload && typeof payload.access_token === "string"
        ? payload.access_token
        : "";
    if (!token) return errorResponse(502, "The backend accepted the sign-in but sent no access token.");
    const response = NextResponse.json({ signed_in: true });
    setSession(response, request, token);
    return response;
  });
}
