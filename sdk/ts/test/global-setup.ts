// Builds the real server (go build from the repository root), starts it on
// a free port with its own PostgreSQL in a temporary data directory, and
// provides its URL to the tests as inject("apiUrl") (its mailbox and
// platform key too). Stopped with SIGTERM at teardown. The console's tests
// (web/console) start their server with it as well.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    apiUrl: string;
    /** The server's development mailbox: one <n>-<to>.eml file per mail. */
    mailboxDir: string;
    /** The operator's credential (QUARTERS_PLATFORM_KEY), for PlatformService. */
    platformKey: string;
  }
}

const repoRoot = resolve(import.meta.dirname, "../../..");

export default async function setup(project: TestProject) {
  const work = mkdtempSync(join(tmpdir(), "quarters-sdk-ts-"));
  chmodSync(work, 0o755);
  const bin = join(work, "quarters");
  const env = { ...process.env, GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? "local" };
  execFileSync("go", ["build", "-o", bin, "./cmd/quarters"], { cwd: repoRoot, env, stdio: "inherit" });
  const dataDir = join(work, "data");
  execFileSync("mkdir", ["-m", "0755", dataDir]);
  const mailboxDir = join(work, "mailbox");
  const platformKey = randomBytes(32).toString("hex");

  // Only these variables: no DATABASE_URL or REDIS_URL from the caller.
  const child: ChildProcess = spawn(bin, [], {
    cwd: work,
    // The tests sign up many tenants from one address: lift the sign-up limit.
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? work,
      QUARTERS_ADDR: "127.0.0.1:0",
      QUARTERS_DATA_DIR: dataDir,
      QUARTERS_MAILBOX_DIR: mailboxDir,
      QUARTERS_SIGNUP_RATE: "100000",
      QUARTERS_SIGNIN_ACCOUNT_RATE: "100000",
      QUARTERS_PLATFORM_KEY: platformKey,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderrTail = "";
  child.stderr!.on("data", (b: Buffer) => {
    stderrTail = (stderrTail + b.toString()).slice(-4000);
  });

  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 90 s; stderr:\n${stderrTail}`)), 90_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const m = /Quarters is listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!.replace(/\/+$/, ""));
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening; stderr:\n${stderrTail}`));
    });
  });
  child.stdout!.resume();
  project.provide("apiUrl", url);
  project.provide("mailboxDir", mailboxDir);
  project.provide("platformKey", platformKey);
  process.env.QUARTERS_URL = url;

  return async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise((r) => (timer = setTimeout(r, 20_000, "timeout")));
      if ((await Promise.race([exited, timeout])) === "timeout") child.kill("SIGKILL");
      clearTimeout(timer);
    }
    rmSync(work, { recursive: true, force: true, maxRetries: 3 });
  };
}
