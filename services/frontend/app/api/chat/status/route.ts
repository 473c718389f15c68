/**
 * Whether chat works right now, from the chatbot's readiness check, so the chat panel
 * can say "chat is off" and why before the user types anything.
 */
import { NextResponse } from "next/server";

import { readinessReason } from "../../../../lib/errors";
import { callUpstream, UpstreamUnavailable } from "../../../../lib/upstream";

export const dynamic = "force-dynamic";

// A readiness probe that takes longer than this is as good as "down" for the chat panel.
const READY_TIMEOUT_MS = 5_000;

export interface ChatStatus {
  available: boolean;
  reason: string | null;
}

export async function GET(): Promise<NextResponse<ChatStatus>> {
  try {
    const upstream = await callUpstream("chatbot", { path: "/ready", timeoutMs: READY_TIMEOUT_MS });
    if (upstream.ok) return NextResponse.json({ available: true, reason: null });
    const text = upstream.text;
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Plain-text reason; readinessReason handles strings.
    }
    return NextResponse.json({ available: false, reason: readinessReason(upstream.status, body) });
  } catch (error) {
    if (error instanceof UpstreamUnavailable) {
      console.warn(`upstream unavailable: ${error.message}`);
      return NextResponse.json({ available: false, reason: error.message });
    }
    throw error;
  }
}
