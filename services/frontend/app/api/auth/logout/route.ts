/** Sign-out: drops the session cookie. JWTs are stateless, so there is nothing to tell the backend. */
import { type NextRequest, NextResponse } from "next/server";

import { clearSession } from "../../../../lib/session";

export const dynamic = "force-dynamic";

export function POST(request: NextRequest): NextResponse {
  const response = new NextResponse(null, { status: 204 });
  clearSession(response, request);
  return response;
}
