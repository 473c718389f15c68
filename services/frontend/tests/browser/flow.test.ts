/**
 * A user's whole visit in real headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core) against the built frontend and a real backend on a fresh SQLite file:
 * sign up, sign in, add/edit/complete/filter/search/delete todos, see that chat is off,
 * chat once a model is on, sign out — and a clear message once the backend goes away.
 * The chatbot is a stand-in at the HTTP edge (see startChatbotStandIn for why and how).
 *
 * Needs: `chromium` (apt-get install -y chromium, or CHROMIUM_PATH), BACKEND_PYTHON (a
 * Python with the backend's requirements) and BACKEND_SRC (services/backend).
 * A screenshot of the signed-in page is written to the printed path.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  makeWorkDir,
  type ChatbotStandIn,
  type Started,
  startBackend,
  startChatbotStandIn,
  startFrontend,
} from "./processes";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const EMAIL = `browser-${Date.now()}@example.com`;
const PASSWORD = "correct horse battery staple";

let workDir = "";
let backend: Started | undefined;
let chatbot: ChatbotStandIn | undefined;
let frontend: Started | undefined;
let context: BrowserContext | undefined;
let page: Page;
let screenshotDir = "";

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) ` +
        "or set CHROMIUM_PATH to a Chromium binary.",
    );
  }
  workDir = makeWorkDir();
  backend = await startBackend(workDir);
  chatbot = await startChatbotStandIn(backend.url);
  frontend = await startFrontend(workDir, { BACKEND_URL: backend.url, CHATBOT_URL: chatbot.url });
  context = await chromium.launchPersistentContext(mkdtempSync(join(workDir, "profile-")), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  screenshotDir = mkdtempSync(join(tmpdir(), "lumina-frontend-screenshots-"));
});

afterAll(async () => {
  await context?.close();
  await frontend?.stop();
  await chatbot?.stop();
  await backend?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

function todoItem(title: string) {
  return page.getByTestId("todo").filter({ has: page.getByText(title, { exact: true }) });
}

describe("the Lumina Todo frontend in Chromium", () => {
  it("sends a signed-out visitor to sign-in, and signs a new user up", async () => {
    await page.goto(`${frontend!.url}/`);
    await expect.poll(() => new URL(page.url()).pathname).toBe("/sign-in");

    await page.getByRole("link", { name: "Sign up" }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe("/sign-up");
    await page.getByLabel("Email").fill(EMAIL);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign up" }).click();

    await page.getByText("Account created. Sign in with your email and password.").waitFor();
    expect(await page.getByLabel("Email").inputValue()).toBe(EMAIL);
  });

  it("refuses a wrong password in words, then signs in with an httpOnly session cookie", async () => {
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "Invalid email or password" }).waitFor();

    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText(`Signed in as ${EMAIL}`).waitFor();

    const cookies = await context!.cookies();
    const session = cookies.find((cookie) => cookie.name === "lumina_session");
    expect(session, "the sign-in should set the lumina_session cookie").toBeDefined();
    expect(session!.httpOnly).toBe(true);
    expect(session!.sameSite).toBe("Lax");
    // Page scripts must not be able to read the token.
    expect(await page.evaluate(() => document.cookie)).not.toContain("lumina_session");
  });

  it("says plainly that chat is off, with the chatbot's reason", async () => {
    const panel = page.getByRole("complementary", { name: "Chat" });
    await panel.getByText("Chat is off.").waitFor();
    // The chatbot's reason, minus its "Chat is off:" lead-in that the heading already says.
    await panel.getByText("No model is configured (OPENAI_API_KEY is not set).", { exact: true }).waitFor();
    expect(await panel.getByRole("button", { name: "Send" }).isDisabled()).toBe(true);
  });

  it("adds, edits and completes todos, and filters and searches them", async () => {
    const adder = page.getByRole("form", { name: "Add a todo" });
    await adder.getByLabel("Title").fill("Buy oat milk");
    await adder.getByLabel("Priority").selectOption("high");
    await adder.getByLabel("Due").fill("2030-01-31");
    await adder.getByRole("button", { name: "Add todo" }).click();
    await todoItem("Buy oat milk").waitFor();
    expect(await todoItem("Buy oat milk").textContent()).toContain("due 2030-01-31");

    await adder.getByLabel("Title").fill("Call the plumber");
    await adder.getByRole("button", { name: "Add todo" }).click();
    await todoItem("Call the plumber").waitFor();

    await todoItem("Buy oat milk").getByRole("button", { name: "Edit" }).click();
    const editor = page.getByRole("form", { name: "Edit Buy oat milk" });
    await editor.getByLabel("Title").fill("Buy oat milk and bread");
    await editor.getByLabel("Description").fill("From the corner shop");
    await editor.getByRole("button", { name: "Save" }).click();
    await todoItem("Buy oat milk and bread").waitFor();
    expect(await todoItem("Buy oat milk and bread").textContent()).toContain("From the corner shop");

    await page.getByLabel("Done: Buy oat milk and bread").check();
    await expect.poll(() => todoItem("Buy oat milk and bread").getAttribute("class")).toBe("todo done");

    await page.getByLabel("Show").selectOption("open");
    await todoItem("Call the plumber").waitFor();
    await todoItem("Buy oat milk and bread").waitFor({ state: "detached" });
    await page.getByLabel("Show").selectOption("done");
    await todoItem("Buy oat milk and bread").waitFor();
    await todoItem("Call the plumber").waitFor({ state: "detached" });
    await page.getByLabel("Show").selectOption("all");

    await page.getByLabel("Search titles").fill("plumb");
    await todoItem("Buy oat milk and bread").waitFor({ state: "detached" });
    await todoItem("Call the plumber").waitFor();
    await page.getByLabel("Search titles").fill("");
    await todoItem("Buy oat milk and bread").waitFor();

    const shot = join(screenshotDir, "todos.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot of the signed-in page: ${shot}`);
  });

  it("deletes a todo, and the change survives a reload", async () => {
    await todoItem("Buy oat milk and bread").getByRole("button", { name: "Delete" }).click();
    await todoItem("Buy oat milk and bread").waitFor({ state: "detached" });
    await page.reload();
    await todoItem("Call the plumber").waitFor();
    expect(await page.getByTestId("todo").count()).toBe(1);
  });

  it("chats once a model is configured, acting with the user's own token", async () => {
    chatbot!.setModel(true);
    const panel = page.getByRole("complementary", { name: "Chat" });
    await panel.getByRole("button", { name: "Check again" }).click();
    await panel.getByText("Chat is off.").waitFor({ state: "detached" });

    await panel.getByLabel("Message").fill("add Water the plants");
    await panel.getByRole("button", { name: "Send" }).click();
    await panel.getByText('Added "Water the plants".').waitFor();
    // The reply may have changed todos, so the list reloads by itself.
    await todoItem("Water the plants").waitFor();

    await panel.getByLabel("Message").fill("add Feed the cat");
    await panel.getByRole("button", { name: "Send" }).click();
    await todoItem("Feed the cat").waitFor();
    const shot = join(screenshotDir, "chat.png");
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot after chatting: ${shot}`);
    expect(chatbot!.chats).toEqual([
      { message: "add Water the plants" },
      { message: "add Feed the cat", conversation_id: "conv-1" },
    ]);
  });

  it("tells the user when the backend is down instead of hanging", async () => {
    await backend!.stop();
    await page.getByLabel("Show").selectOption("open");
    await page
      .getByRole("alert")
      .filter({ hasText: `The backend service at ${backend!.url} cannot be reached` })
      .waitFor({ timeout: 12_000 });
  });

  it("signs out, after which the list is out of reach", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe("/sign-in");
    await page.goto(`${frontend!.url}/`);
    await expect.poll(() => new URL(page.url()).pathname).toBe("/sign-in");
    expect((await context!.cookies()).some((cookie) => cookie.name === "lumina_session" && cookie.value)).toBe(false);
  });
});
