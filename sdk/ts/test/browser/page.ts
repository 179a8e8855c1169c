// Runs in Chromium, bundled by esbuild from the SDK's sources. The API URL
// comes in the page's query string; results go into the DOM for the test.
import { clone } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createQuartersClient, createSession, signIn, ConnectError, SessionSchema } from "../../src/index.js";

declare global {
  interface Window {
    /** The test's reader of the server's development mailbox (exposed by playwright). */
    mailedToken(to: string, prefix: string): Promise<string>;
  }
}

const out = (id: string, v: string) => {
  const el = document.createElement("output");
  el.id = id;
  el.textContent = v;
  document.body.append(el);
};

async function main() {
  const baseUrl = new URLSearchParams(location.search).get("api")!;
  let remaining: string | null = null;
  const watchingFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    remaining = res.headers.get("x-ratelimit-remaining") ?? remaining;
    return res;
  };
  const slug = `b-${Date.now().toString(36)}`;
  const anon = createQuartersClient({ baseUrl });
  const signup = await anon.tenants.createTenant({ slug, name: "Browser", ownerEmail: `ceo@${slug}.example` });
  const q = createQuartersClient({ baseUrl, apiKey: signup.apiKeySecret, fetch: watchingFetch });
  const { project } = await q.projects.createProject({ name: "From the browser" });
  await q.documents.createDocument({ projectId: project!.id, title: "Browser kickoff", content: "Hello" });
  const list = await q.documents.listDocuments({ pageSize: 10 });
  out("titles", list.documents.map((d) => d.title).join(","));
  out("remaining", String(remaining));

  // A person signs up, verifies the address with the mailed link, and
  // signs in. Their session's access token then seems expired: the first
  // call refreshes it (RefreshToken is public), then sends the new JWT.
  const email = `ann@${slug}.example`;
  await anon.tenants.createTenant({ slug: `${slug}-s`, name: "Browser session", ownerEmail: email, ownerPassword: "browser password 1" });
  await anon.auth.verifyEmail({ token: await window.mailedToken(email, "qv_") });
  const signedIn = await signIn({ baseUrl, email, password: "browser password 1", tenant: `${slug}-s` });
  const expired = clone(SessionSchema, signedIn);
  expired.accessTokenExpireTime = timestampFromMs(0);
  let saved = 0;
  const session = createSession({ baseUrl, session: expired, onRefresh: () => void saved++ });
  const me = await createQuartersClient({ baseUrl, session }).members.getCurrentUser({});
  out("me", `${me.user?.email} ${saved}`);
}

main().then(
  () => out("done", "ok"),
  (err: unknown) => out("done", `error: ${ConnectError.from(err).message}`),
);
