/** One chat turn, forwarded to the chatbot with the user's own token (it acts only as that user). */
import type { NextRequest, NextResponse } from "next/server";

import { forwardAsUser, readJsonBody } from "../../../lib/proxy";

export const dynamic = "force-dynamic";

export async function POST(request: NextRequest): Promise<NextResponse> {
  const body = await readJsonBody(request);
  if (!body.ok) return body.response;
  return forwardAsUser(request, "chatbot", { method: "POST", path: "/api/chat", body: body.value });
}
