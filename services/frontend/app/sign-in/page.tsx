import type { Metadata } from "next";

import AuthForm from "../../components/AuthForm";

export const metadata: Metadata = { title: "Sign in · Lumina Todo" };

export default async function SignInPage({
  searchParams,
}: {
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const params = await searchParams;
  const notice = params.registered ? "Account created. Sign in with your email and password." : undefined;
  const email = typeof params.email === "string" ? params.email : undefined;
  return <AuthForm mode="sign-in" notice={notice} initialEmail={email} />;
}
