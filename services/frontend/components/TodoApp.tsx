"use client";

/** The signed-in page: the todo list with its filters, and the chat panel beside it. */
import { useRouter } from "next/navigation";
import { useCallback, useEffect, useRef, useState } from "react";

import { api, type ApiResult } from "../lib/client";
import { type DoneFilter, listQuery, type Todo, type TodoPage } from "../lib/todos";
import ChatPanel from "./ChatPanel";
import TodoForm, { type TodoDraft } from "./TodoForm";

const PAGE_SIZE = 50;
// Wait for a pause in typing so a search does not fire one request per keystroke.
const SEARCH_DEBOUNCE_MS = 300;

export default function TodoApp() {
  const router = useRouter();
  const [email, setEmail] = useState<string | null>(null);
  const [filter, setFilter] = useState<DoneFilter>("all");
  const [search, setSearch] = useState("");
  const [query, setQuery] = useState("");
  const [todos, setTodos] = useState<Todo[]>([]);
  const [total, setTotal] = useState(0);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState<number | null>(null);
  // Responses can arrive out of order (a reload after a save racing a filter change);
  // only the newest request may paint the list.
  const latestLoad = useRef(0);

  /** Shows the failure, or leaves for sign-in when the session is gone. */
  const fail = useCallback(
    (result: ApiResult<unknown>): void => {
      if (!result.ok && result.status === 401) {
        router.replace("/sign-in");
        router.refresh();
        return;
      }
      if (!result.ok) setError(result.error);
    },
    [router],
  );

  const load = useCallback(
    async (offset = 0): Promise<void> => {
      const ticket = ++latestLoad.current;
      const result = await api<TodoPage>(`/api/todos?${listQuery(filter, query, PAGE_SIZE, offset)}`);
      if (ticket !== latestLoad.current) return;
      setLoading(false);
      if (!result.ok) return fail(result);
      setError(null);
      setTodos((current) => (offset === 0 ? result.data.items : [...current, ...result.data.items]));
      setTotal(result.data.total);
    },
    [filter, query, fail],
  );

  useEffect(() => {
    void api<{ email: string }>("/api/auth/me").then((result) => (result.ok ? setEmail(result.data.email) : fail(result)));
  }, [fail]);

  // Saves finish after the user may have changed the filter; reloading through this ref
  // uses the filter on screen now, not the one captured when the save started.
  const loadLatest = useRef(load);
  useEffect(() => {
    loadLatest.current = load;
    void load();
  }, [load]);
  const refresh = useCallback((): Promise<void> => loadLatest.current(), []);

  useEffect(() => {
    const timer = setTimeout(() => setQuery(search), SEARCH_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [search]);

  async function create(draft: TodoDraft): Promise<boolean> {
    const result = await api<Todo>("/api/todos", { method: "POST", body: draft });
    if (!result.ok) {
      fail(result);
      return false;
    }
    setError(null);
    await refresh();
    return true;
  }

  async function update(id: number, changes: Partial<TodoDraft> & { done?: boolean }): Promise<boolean> {
    const result = await api<Todo>(`/api/todos/${id}`, { method: "PATCH", body: changes });
    if (!result.ok) {
      fail(result);
      return false;
    }
    setError(null);
    setEditing(null);
    await refresh();
    return true;
  }

  /** Ticks the box at once (the round trip can take a moment); a failed save reloads the truth. */
  async function toggle(id: number, done: boolean): Promise<void> {
    setTodos((current) => current.map((todo) => (todo.id === id ? { ...todo, done } : todo)));
    if (!(await update(id, { done }))) await refresh();
  }

  async function remove(id: number): Promise<void> {
    const result = await api(`/api/todos/${id}`, { method: "DELETE" });
    if (!result.ok) return fail(result);
    setError(null);
    await refresh();
  }

  async function signOut(): Promise<void> {
    await api("/api/auth/logout", { method: "POST" });
    router.replace("/sign-in");
    router.refresh();
  }

  return (
    <>
      <header className="topbar">
        <h1>Lumina Todo</h1>
        <div className="who">
          {email ? <span>Signed in as {email}</span> : null}
          <button type="button" className="secondary" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <div className="layout">
        <main className="stack">
          <section className="panel">
            <h2>New todo</h2>
            <TodoForm submitLabel="Add todo" onSubmit={create} />
          </section>
          <section className="panel stack" aria-label="Your todos">
            <div className="row">
              <h2 className="grow">Your todos</h2>
              <label>
                Show
                <select name="filter" value={filter} onChange={(event) => setFilter(event.target.value as DoneFilter)}>
                  <option value="all">All</option>
                  <option value="open">Open</option>
                  <option value="done">Done</option>
                </select>
              </label>
              <label>
                Search titles
                <input type="search" name="q" value={search} onChange={(event) => setSearch(event.target.value)} />
              </label>
            </div>
            {error ? (
              <p className="alert" role="alert">
                {error}
              </p>
            ) : null}
            {loading ? <p className="muted">Loading…</p> : null}
            {!loading && todos.length === 0 && !error ? (
              <p className="muted">{query || filter !== "all" ? "No todos match." : "Nothing to do yet. Add a todo above."}</p>
            ) : null}
            <ul className="todos">
              {todos.map((todo) =>
                editing === todo.id ? (
                  <li key={todo.id} className="todo">
                    <div className="body">
                      <TodoForm
                        initial={todo}
                        submitLabel="Save"
                        onSubmit={(draft) => update(todo.id, draft)}
                        onCancel={() => setEditing(null)}
                      />
                    </div>
                  </li>
                ) : (
                  <li key={todo.id} className={todo.done ? "todo done" : "todo"} data-testid="todo">
                    <input
                      type="checkbox"
                      checked={todo.done}
                      aria-label={`Done: ${todo.title}`}
                      onChange={(event) => void toggle(todo.id, event.target.checked)}
                    />
                    <div className="body">
                      <span className="title">{todo.title}</span>
                      <span className={`badge ${todo.priority}`}>{todo.priority}</span>
                      {todo.due_date ? <span className="badge">due {todo.due_date}</span> : null}
                      {todo.description ? <p className="description">{todo.description}</p> : null}
                    </div>
                    <div className="row">
                      <button type="button" className="secondary" onClick={() => setEditing(todo.id)}>
                        Edit
                      </button>
                      <button type="button" className="danger" onClick={() => void remove(todo.id)}>
                        Delete
                      </button>
                    </div>
                  </li>
                ),
              )}
            </ul>
            {todos.length < total ? (
              <div className="row">
                <span className="muted grow">
                  Showing {todos.length} of {total}
                </span>
                <button type="button" className="secondary" onClick={() => void load(todos.length)}>
                  Show more
                </button>
              </div>
            ) : null}
          </section>
        </main>
        <ChatPanel onReply={() => void refresh()} />
      </div>
    </>
  );
}
