import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

const repoRoot = resolve(import.meta.dirname, "../..");

export default defineConfig({
  // The tests use the SDK's sources and its server setup from sdk/ts.
  server: { fs: { allow: [repoRoot] } },
  test: {
    include: ["test/**/*.test.ts"],
    // The SDK's: builds and starts the real server (embedding the
    // committed console), with its mailbox and a platform key.
    globalSetup: [resolve(repoRoot, "sdk/ts/test/global-setup.ts")],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ["default"],
  },
});
