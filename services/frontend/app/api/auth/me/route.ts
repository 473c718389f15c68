/** The signed-in user ({id, email}) as the backend knows them. */
import type { NextRequest, NextResponse } from "next/server";

import { forwardAsUser } from "../../../../lib/proxy";

export const dynamic = "force-dynamic";

export function GET(request: NextRequest): Promise<NextResponse> {
  return forwardAsUser(request, "backend", { path: "/api/auth/me" });
}
