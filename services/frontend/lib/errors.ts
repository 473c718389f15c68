/**
 * Turns error bodies (FastAPI's `{"detail": ...}` shapes and our own) into one sentence
 * a user can read. Used by both route handlers and client components, so it imports nothing.
 */

interface ValidationIssue {
  loc?: unknown;
  msg?: unknown;
}

function describeIssue(issue: ValidationIssue): string {
  const msg = typeof issue.msg === "string" ? issue.msg : "is invalid";
  // FastAPI prefixes the location with where it came from ("body", "query"); users only care about the field.
  const loc = Array.isArray(issue.loc)
    ? issue.loc.filter((part) => part !== "body" && part !== "query" && part !== "path").join(".")
    : "";
  return loc ? `${loc}: ${msg}` : msg;
}

/** The `detail` of an error body as words, or undefined when there is none. */
export function detailText(body: unknown): string | undefined {
  if (!body || typeof body !== "object" || !("detail" in body)) return undefined;
  const detail = body.detail;
  if (typeof detail === "string" && detail.trim()) return detail;
  if (Array.isArray(detail) && detail.length > 0) {
    return detail.map((issue) => describeIssue(issue && typeof issue === "object" ? issue : {})).join("; ");
  }
  if (detail && typeof detail === "object" && "message" in detail && typeof detail.message === "string") {
    return detail.message;
  }
  return undefined;
}

/** A sentence for a failed request: the server's own words when it gave some. */
export function describeError(status: number, body: unknown): string {
  const detail = detailText(body);
  if (detail) return detail;
  if (status === 401) return "You are not signed in.";
  if (status === 404) return "Not found.";
  if (status >= 500) return `The server failed (HTTP ${status}). Try again in a moment.`;
  return `The request failed (HTTP ${status}).`;
}

/** Why a service's readiness check failed, from its body (`detail`, `reason` or `status`). */
export function readinessReason(status: number, body: unknown): string {
  const detail = detailText(body);
  if (detail) return detail;
  if (body && typeof body === "object") {
    for (const key of ["reason", "message", "status"] as const) {
      const value = (body as Record<string, unknown>)[key];
      if (typeof value === "string" && value.trim()) return value;
    }
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 200);
  return `The chatbot is not ready (HTTP ${status}).`;
}

/**
 * The chatbot's reason without its own "Chat is off:" lead-in, because the chat panel
 * already says that in its heading.
 */
export function chatOffDetail(reason: string | null): string {
  const rest = (reason ?? "").replace(/^\s*chat is off\s*[:.\-–—]?\s*/i, "").trim();
  if (!rest) return "The chatbot is not available.";
  return rest.charAt(0).toUpperCase() + rest.slice(1);
}
