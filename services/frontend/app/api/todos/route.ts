/** The user's todo list (filter, search, pagination) and todo creation, forwarded to the backend. */
import type { NextRequest, NextResponse } from "next/server";

import { forwardAsUser, readJsonBody } from "../../../lib/proxy";

export const dynamic = "force-dynamic";

// Only the backend's documented list parameters go upstream; anything else is dropped.
const LIST_PARAMS = ["done", "q", "limit", "offset"] as const;

export function GET(request: NextRequest): Promise<NextResponse> {
  const query = new URLSearchParams();
  for (const name of LIST_PARAMS) {
    const value = request.nextUrl.searchParams.get(name);
    if (value !== null && value !== "") query.set(name, value);
  }
  const suffix = query.size > 0 ? `?${query.toString()}` : "";
  return forwardAsUser(request, "backend", { path: `/api/todos${suffix}` });
}

export async function POST(request: NextRequest): Promise<NextResponse> {
  const body = await readJsonBody(request);
  if (!body.ok) return body.response;
  return forwardAsUser(request, "backend", { method: "POST", path: "/api/todos", body: body.value });
}
