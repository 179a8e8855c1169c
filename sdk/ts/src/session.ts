// Sessions: sign a person in, and keep their session going by refreshing
// it before its access token expires, one refresh at a time.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { isUnauthenticated } from "./errors.js";
import { AuthService } from "./gen/quarters/v1/auth_pb.js";
import type { Session } from "./gen/quarters/v1/session_pb.js";
import { retryInterceptor, withRetryDefaults, type RetryPolicy } from "./retry.js";
import { buildTransport, type ConnectionOptions } from "./transport.js";

/** A minute: how long before its access token expires a session is refreshed by default. */
export const DEFAULT_REFRESH_BEFORE_MS = 60_000;

/** Options of signIn. */
export interface SignInOptions extends ConnectionOptions {
  email: string;
  password: string;
  /** Slug or id of the tenant to sign in to; if empty, `X-Tenant-ID` in headers or baseUrl's subdomain must name it. */
  tenant?: string;
  /** Extra request headers, e.g. `{ "X-Tenant-ID": "acme" }`. */
  headers?: HeadersInit;
  /** Retry policy (see RetryPolicy), or false for none. */
  retry?: Partial<RetryPolicy> | false;
}

/**
 * signIn checks a person's email and password and returns their session in
 * the tenant; hand it to createSession. An unknown email, a wrong password
 * and a tenant the person does not belong to are all the same
 * UNAUTHENTICATED error.
 */
export async function signIn(options: SignInOptions): Promise<Session> {
  const { email, password, tenant = "", headers } = options;
  const res = await authClient(options, options.retry).signIn({ email, password, tenant }, { headers });
  return sessionOf(res.session);
}

/** Options of createSession. */
export interface SessionOptions extends ConnectionOptions {
  /** The session to keep going: from signIn, acceptInvitation, createTenant with an owner password, or storage. */
  session: Session;
  /**
   * Called with every session that replaces the current one: after each
   * refresh and after switchTenant. Persist it here if it must outlive the
   * page or process: it holds the only refresh token that still works.
   * Calls never overlap and come in order; calls waiting for a refresh
   * proceed when it settles. If it throws, the calls that waited for that
   * refresh reject with its error (the new session is kept all the same).
   */
  onRefresh?: (session: Session) => void | Promise<void>;
  /** How long before the access token expires the session is refreshed (default DEFAULT_REFRESH_BEFORE_MS). */
  refreshBeforeMs?: number;
  /** Retry policy of the RefreshToken, SwitchTenant and SignOut calls, or false for none. */
  retry?: Partial<RetryPolicy> | false;
}

/**
 * A signed-in person's session, kept going. Pass it to createQuartersClient
 * as `session` (or its getToken as `getToken`).
 */
export interface QuartersSession {
  /** The current session; replaced (never modified) by refreshes and switchTenant. */
  readonly session: Session;
  /**
   * The access token, after refreshing the session if the token expires
   * within refreshBeforeMs. Concurrent calls share one refresh, so a
   * refresh token is never presented twice (which would end the session).
   * Rejects with an error for which isSessionEnded is true once the
   * session cannot go on. If a refresh fails otherwise (the API is
   * unreachable), the current token is returned while it has not expired.
   */
  getToken(): Promise<string>;
  /**
   * Replaces the session with one in tenant (slug or id), another tenant
   * the person belongs to, and ends the replaced session. onRefresh
   * receives the new one. Rejects with NOT_FOUND if the person is not a
   * member there; the session is then unchanged.
   */
  switchTenant(tenant: string): Promise<void>;
  /**
   * Replaces the person's password (checked against `current`). The server
   * ends every session of the person, this one included, and returns a
   * fresh one, which replaces this session's (onRefresh receives it):
   * calls go on, while the person's other devices must sign in again.
   * Rejects with UNAUTHENTICATED for a wrong current password and
   * INVALID_ARGUMENT for a new one outside 10 to 128 characters; the
   * session is then unchanged.
   */
  changePassword(current: string, next: string): Promise<void>;
  /**
   * Ends the session on the server (its refresh token stops working) and
   * here: getToken then rejects with a session-ended error. If the API
   * cannot be reached, rejects and keeps the session, so it can be tried
   * again.
   */
  signOut(): Promise<void>;
}

/** A refresh, tenant switch or sign-out in flight; they run one at a time. */
interface Change {
  refresh: boolean;
  /** Settles (never rejects) when the change is done. */
  done: Promise<void>;
  error?: unknown;
  /** The error onRefresh threw, if it did. */
  saveError?: unknown;
}

/** The errors of sessions that cannot go on. */
const endedErrors = new WeakSet<object>();

/**
 * isSessionEnded reports whether err says the session cannot go on: its
 * refresh token was refused (expired, revoked, already used, or the person
 * removed from the tenant), or it was signed out. Only signing in again
 * helps. Such errors are UNAUTHENTICATED.
 */
export function isSessionEnded(err: unknown): boolean {
  return typeof err === "object" && err !== null && endedErrors.has(err);
}

function sessionEnded(reason: string, cause?: unknown): ConnectError {
  const err = new ConnectError(`session ended: sign in again (${reason})`, Code.Unauthenticated, undefined, undefined, cause);
  endedErrors.add(err);
  return err;
}

/** Internal hooks of sessions, for createQuartersClient; not exported from the package. */
const refusedHooks = new WeakMap<QuartersSession, (token: string) => Promise<void>>();

/**
 * tokenRefused tells session that the API refused token, which it handed
 * out as valid (e.g. the person's role changed since). Unless the session
 * has moved on since, it is refreshed: once, however many calls were
 * refused. Resolves when a new getToken is worth a try.
 */
export function tokenRefused(session: QuartersSession, token: string): Promise<void> {
  const hook = refusedHooks.get(session);
  return hook ? hook(token) : Promise.resolve();
}

/** createSession keeps session going: see QuartersSession. */
export function createSession(options: SessionOptions): QuartersSession {
  const auth = authClient(options, options.retry);
  const before = options.refreshBeforeMs && options.refreshBeforeMs > 0 ? options.refreshBeforeMs : DEFAULT_REFRESH_BEFORE_MS;
  let current = options.session;
  let ended: ConnectError | undefined;
  let change: Change | undefined;

  const expires = (s: Session) => (s.accessTokenExpireTime ? timestampMs(s.accessTokenExpireTime) : 0);

  // Starts the change run, which must not throw; returns it.
  const begin = (refresh: boolean, run: (c: Change) => Promise<void>): Change => {
    const c: Change = { refresh, done: Promise.resolve() };
    change = c;
    c.done = run(c).finally(() => {
      change = undefined;
    });
    return c;
  };

  // Replaces the session and tells onRefresh, inside the change c.
  const replace = async (c: Change, next: Session) => {
    current = next;
    try {
      await options.onRefresh?.(next);
    } catch (err) {
      c.saveError = err;
    }
  };

  // Starts a refresh, or ends the session if it cannot be refreshed.
  const refresh = (): Change | undefined => {
    const rt = current.refreshToken;
    if (!rt) {
      ended = sessionEnded("the session has no refresh token");
      return undefined;
    }
    if (current.refreshTokenExpireTime && timestampMs(current.refreshTokenExpireTime) <= Date.now()) {
      ended = sessionEnded("the refresh token expired");
      return undefined;
    }
    return begin(true, async (c) => {
      try {
        const res = await auth.refreshToken({ refreshToken: rt });
        await replace(c, sessionOf(res.session));
      } catch (err) {
        // Refused: the refresh token is spent, revoked or expired, or the
        // person is no longer a member. No later refresh can succeed.
        if (isUnauthenticated(err)) ended = sessionEnded(ConnectError.from(err).rawMessage, err);
        c.error = ended ?? err;
      }
    });
  };

  const getToken = async (): Promise<string> => {
    let failed: Change | undefined;
    for (;;) {
      if (ended) throw ended;
      const now = Date.now();
      const exp = expires(current);
      if (current.accessToken && now < exp - before) return current.accessToken;
      if (failed) {
        if (current.accessToken && now < exp) return current.accessToken;
        throw failed.error;
      }
      const c = change ?? refresh();
      if (!c) continue;
      await c.done;
      if (c.saveError !== undefined) throw c.saveError;
      if (c.refresh && c.error !== undefined) failed = c;
    }
  };

  // Waits until no change is in flight, then starts run as the next one.
  const claim = async (run: (c: Change) => Promise<void>): Promise<Change> => {
    while (change) await change.done;
    if (ended) throw ended;
    return begin(false, run);
  };

  const session: QuartersSession = {
    get session() {
      return current;
    },
    getToken,
    async switchTenant(tenant: string) {
      await getToken(); // an access token that will not expire mid-call
      let old: Session | undefined;
      const c = await claim(async (c) => {
        old = current;
        try {
          const res = await auth.switchTenant({ tenant }, { headers: { Authorization: `Bearer ${old.accessToken}` } });
          await replace(c, sessionOf(res.session));
        } catch (err) {
          c.error = err;
        }
      });
      await c.done;
      if (c.error !== undefined) throw c.error;
      // The replaced session is ended; nothing holds its refresh token any
      // more, so a failure here changes nothing the caller could act on.
      await auth.signOut({ refreshToken: old!.refreshToken }).catch(() => {});
      if (c.saveError !== undefined) throw c.saveError;
    },
    async changePassword(currentPassword: string, newPassword: string) {
      await getToken(); // an access token that will not expire mid-call
      const c = await claim(async (c) => {
        try {
          const res = await auth.changePassword(
            { currentPassword, newPassword },
            { headers: { Authorization: `Bearer ${current.accessToken}` } },
          );
          await replace(c, sessionOf(res.session));
        } catch (err) {
          c.error = err;
        }
      });
      await c.done;
      if (c.error !== undefined) throw c.error;
      if (c.saveError !== undefined) throw c.saveError;
    },
    async signOut() {
      let c: Change;
      try {
        c = await claim(async (c) => {
          try {
            if (current.refreshToken) await auth.signOut({ refreshToken: current.refreshToken });
            ended = sessionEnded("signed out");
          } catch (err) {
            c.error = err;
          }
        });
      } catch (err) {
        if (isSessionEnded(err)) return;
        throw err;
      }
      await c.done;
      if (c.error !== undefined) throw c.error;
    },
  };

  refusedHooks.set(session, async (token) => {
    while (!ended && current.accessToken === token) {
      const c = change ?? refresh();
      if (!c) break;
      await c.done;
      if (c.refresh && c.error !== undefined && !ended) throw c.error;
    }
    if (ended) throw ended;
  });
  return session;
}

/** An AuthService client that sends no credential of its own. */
function authClient(options: ConnectionOptions, retry: Partial<RetryPolicy> | false | undefined): Client<typeof AuthService> {
  const interceptors = retry === false ? [] : [retryInterceptor(withRetryDefaults(retry))];
  return createClient(AuthService, buildTransport(options, interceptors));
}

/** sessionOf checks that an answer carried a session. */
function sessionOf(s: Session | undefined): Session {
  if (!s?.accessToken || !s.refreshToken) throw new ConnectError("the API's answer holds no session", Code.Internal);
  return s;
}
