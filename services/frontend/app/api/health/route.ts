/** Liveness: answers while the Node process serves requests; checks no upstream on purpose. */
import { NextResponse } from "next/server";

export const dynamic = "force-dynamic";

export function GET(): NextResponse {
  return NextResponse.json({ status: "ok" });
}
