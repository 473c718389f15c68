/** Sign-up: forwards email and password to the backend; the user signs in afterwards. */
import type { NextRequest, NextResponse } from "next/server";

import { clientAddress, readJsonBody } from "../../../../lib/proxy";
import { callUpstream, guarded, relay } from "../../../../lib/upstream";

export const dynamic = "force-dynamic";

export async function POST(request: NextRequest): Promise<NextResponse> {
  const body = await readJsonBody(request);
  if (!body.ok) return body.response;
  return guarded(async () =>
    relay(
      await callUpstream("backend", {
        method: "POST",
        path: "/api/auth/register",
        body: body.value,
        forwardedFor: clientAddress(request),
      }),
    ),
  );
}
