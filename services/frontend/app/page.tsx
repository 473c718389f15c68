/** The signed-in home page: todo list and chat. Signed-out visitors go to sign-in. */
import { cookies } from "next/headers";
import { redirect } from "next/navigation";

import TodoApp from "../components/TodoApp";
import { SESSION_COOKIE } from "../lib/session";

export const dynamic = "force-dynamic";

export default async function HomePage() {
  const store = await cookies();
  if (!store.get(SESSION_COOKIE)?.value) redirect("/sign-in");
  return <TodoApp />;
}
