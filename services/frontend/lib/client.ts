/**
 * The browser's only way to the server: same-origin calls to our own /api route handlers.
 * Returns outcomes as values with a readable message, so components never deal with raw errors.
 */
import { describeError } from "./errors";

export type ApiResult<T> = { ok: true; status: number; data: T } | { ok: false; status: number; error: string };

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<ApiResult<T>> {
  let response: Response;
  try {
    response = await fetch(path, {
      method: init.method ?? "GET",
      headers: init.body === undefined ? undefined : { "content-type": "application/json" },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    return { ok: false, status: 0, error: "Cannot reach the Lumina server. Check your connection and try again." };
  }
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) return { ok: false, status: response.status, error: describeError(response.status, body) };
  return { ok: true, status: response.status, data: body as T };
}
