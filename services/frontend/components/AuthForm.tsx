"use client";

/** Sign-in and sign-up form; the session cookie is set by the server, never handled here. */
import Link from "next/link";
import { useRouter } from "next/navigation";
import { type FormEvent, useState } from "react";

import { api } from "../lib/client";

export interface AuthFormProps {
  mode: "sign-in" | "sign-up";
  notice?: string;
  initialEmail?: string;
}

export default function AuthForm({ mode, notice, initialEmail }: AuthFormProps) {
  const router = useRouter();
  const [email, setEmail] = useState(initialEmail ?? "");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const signingIn = mode === "sign-in";

  async function submit(event: FormEvent<HTMLFormElement>): Promise<void> {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const result = await api(signingIn ? "/api/auth/login" : "/api/auth/register", {
      method: "POST",
      body: { email, password },
    });
    if (!result.ok) {
      setError(
        !signingIn && result.status === 409 ? "An account with this email already exists. Sign in instead." : result.error,
      );
      setBusy(false);
      return;
    }
    if (signingIn) {
      router.replace("/");
      router.refresh();
    } else {
      router.push(`/sign-in?registered=1&email=${encodeURIComponent(email)}`);
    }
  }

  return (
    <main className="auth panel">
      <h1>{signingIn ? "Sign in to Lumina Todo" : "Create your Lumina Todo account"}</h1>
      <form className="stack" onSubmit={submit}>
        {notice ? (
          <p className="notice" role="status">
            {notice}
          </p>
        ) : null}
        {error ? (
          <p className="alert" role="alert">
            {error}
          </p>
        ) : null}
        <label>
          Email
          <input
            name="email"
            type="email"
            autoComplete="email"
            required
            value={email}
            onChange={(event) => setEmail(event.target.value)}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete={signingIn ? "current-password" : "new-password"}
            required
            value={password}
            onChange={(event) => setPassword(event.target.value)}
          />
        </label>
        <button type="submit" disabled={busy}>
          {signingIn ? "Sign in" : "Sign up"}
        </button>
      </form>
      <p className="muted">
        {signingIn ? (
          <>
            No account yet? <Link href="/sign-up">Sign up</Link>
          </>
        ) : (
          <>
            Already registered? <Link href="/sign-in">Sign in</Link>
          </>
        )}
      </p>
    </main>
  );
}
