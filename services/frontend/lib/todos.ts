/** The backend's todo shapes, as the shared API contract defines them. */

export type Priority = "low" | "medium" | "high";

export const PRIORITIES: readonly Priority[] = ["low", "medium", "high"];

export interface Todo {
  id: number;
  title: string;
  description: string | null;
  due_date: string | null;
  priority: Priority;
  done: boolean;
  created_at: string;
  updated_at: string;
}

export interface TodoPage {
  items: Todo[];
  total: number;
  limit: number;
  offset: number;
}

export type DoneFilter = "all" | "open" | "done";

/** Query string for GET /api/todos from the list's filter controls. */
export function listQuery(filter: DoneFilter, search: string, limit: number, offset = 0): string {
  const params = new URLSearchParams();
  if (filter !== "all") params.set("done", filter === "done" ? "true" : "false");
  const q = search.trim();
  if (q) params.set("q", q);
  params.set("limit", String(limit));
  if (offset > 0) params.set("offset", String(offset));
  return params.toString();
}
