/** One todo: read, partial update, delete, forwarded to the backend. */
import type { NextRequest, NextResponse } from "next/server";

import { forwardAsUser, readJsonBody } from "../../../../lib/proxy";
import { errorResponse } from "../../../../lib/upstream";

export const dynamic = "force-dynamic";

interface Context {
  params: Promise<{ id: string }>;
}

/** Todo ids are integers; refusing anything else keeps the path from reaching other backend routes. */
async function todoPath(context: Context): Promise<string | null> {
  const { id } = await context.params;
  return /^[0-9]{1,18}$/.test(id) ? `/api/todos/${id}` : null;
}

const NOT_FOUND = "Todo not found";

export async function GET(request: NextRequest, context: Context): Promise<NextResponse> {
  const path = await todoPath(context);
  if (!path) return errorResponse(404, NOT_FOUND);
  return forwardAsUser(request, "backend", { path });
}

export async function PATCH(request: NextRequest, context: Context): Promise<NextResponse> {
  const path = await todoPath(context);
  if (!path) return errorResponse(404, NOT_FOUND);
  const body = await readJsonBody(request);
  if (!body.ok) return body.response;
  return forwardAsUser(request, "backend", { method: "PATCH", path, body: body.value });
}

export async function DELETE(request: NextRequest, context: Context): Promise<NextResponse> {
  const path = await todoPath(context);
  if (!path) return errorResponse(404, NOT_FOUND);
  return forwardAsUser(request, "backend", { method: "DELETE", path });
}
