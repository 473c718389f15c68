import { defineConfig } from "vitest/config";

// The browser test starts real processes (backend, frontend, Chromium): give it room.
export default defineConfig({
  test: {
    environment: "node",
    include: ["tests/browser/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
