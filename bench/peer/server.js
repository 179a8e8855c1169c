// The peer of `task bench:compare`: a minimal Node/Express + pg server
// that answers ListDocuments(page_size) as Quarters does, for comparison.
// It authenticates the API key the same way (SHA-256, looked up once
// through app.api_key_authenticate and then cached), runs the same
// transaction as the app role (BEGIN; set_config tenant and timeout; the
// same SELECT; COMMIT), and writes the same JSON bytes as Quarters'
// protojson output, which the harness checks before measuring.
//
// Environment: DATABASE_URL (app role), POOL (connections), SEP (what
// Quarters writes between JSON elements: "," or ", "). It listens on
// 127.0.0.1, on a port the kernel picks, and prints it.
"use strict";
const crypto = require("node:crypto");
const express = require("express");
const pg = require("pg");

// Text, not Date: JavaScript dates keep milliseconds, PostgreSQL keeps
// microseconds, and the output must carry them all.
pg.types.setTypeParser(1184, (v) => v); // timestamptz

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.POOL || 4),
});
const SEP = process.env.SEP === undefined ? "," : process.env.SEP;
const keys = new Map(); // sha256 hex -> tenant id

const LIST = `SELECT id, project_id, title, content,
  to_char(create_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS c,
  to_char(update_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS u
FROM documents
WHERE tenant_id = $1 AND (create_time, id) < ('9999-12-31T00:00:00Z'::timestamptz, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)
ORDER BY create_time DESC, id DESC
LIMIT $2`;

// protojson's Timestamp: 0, 3, 6 or 9 fractional digits, then Z.
function protoTime(t) {
  let s = t; // YYYY-MM-DDTHH:MM:SS.uuuuuu
  if (s.endsWith("000")) s = s.slice(0, -3);
  if (s.endsWith(".000")) s = s.slice(0, -4);
  return s + "Z";
}

// Go's time.Time JSON (RFC 3339 with trailing zeros of the fraction cut).
function goTime(t) {
  let s = t.replace(/0+$/, "");
  if (s.endsWith(".")) s = s.slice(0, -1);
  return s + "Z";
}

async function tenantFor(auth) {
  const secret = auth && auth.startsWith("Bearer ") ? auth.slice(7) : "";
  if (!secret) return null;
  const hash = crypto.createHash("sha256").update(secret).digest();
  const hex = hash.toString("hex");
  if (keys.has(hex)) return keys.get(hex);
  const r = await pool.query("SELECT tenant_id FROM app.api_key_authenticate($1)", [hash]);
  const id = r.rows.length ? r.rows[0].tenant_id : null;
  if (id) keys.set(hex, id);
  return id;
}

const app = express();
app.disable("x-powered-by");
app.disable("etag");
app.use(express.json());

app.post("/quarters.v1.DocumentService/ListDocuments", async (req, res) => {
  try {
    const tenant = await tenantFor(req.get("authorization"));
    if (!tenant) {
      res.status(401).json({ code: "unauthenticated", message: "unknown API key" });
      return;
    }
    const size = Math.min(Math.max(Number(req.body.pageSize) || 50, 1), 100);
    const client = await pool.connect();
    let rows;
    try {
      await client.query("BEGIN");
      await client.query("SELECT set_config('app.tenant_id', $1, true), set_config('statement_timeout', '5000', true)", [tenant]);
      rows = (await client.query(LIST, [tenant, size + 1])).rows;
      await client.query("COMMIT");
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      client.release();
    }
    let next = "";
    if (rows.length > size) {
      rows = rows.slice(0, size);
      const last = rows[size - 1];
      next = Buffer.from(JSON.stringify({ t: goTime(last.c), i: last.id })).toString("base64url");
    }
    const docs = rows.map(
      (r) =>
        "{" +
        [
          '"id":' + JSON.stringify(r.id),
          '"projectId":' + JSON.stringify(r.project_id),
          '"title":' + JSON.stringify(r.title),
          '"content":' + JSON.stringify(r.content),
          '"createTime":' + JSON.stringify(protoTime(r.c)),
          '"updateTime":' + JSON.stringify(protoTime(r.u)),
        ].join(SEP) +
        "}",
    );
    const parts = [];
    if (docs.length) parts.push('"documents":[' + docs.join(SEP) + "]");
    if (next) parts.push('"nextPageToken":' + JSON.stringify(next));
    res.type("application/json").send("{" + parts.join(SEP) + "}");
  } catch (e) {
    res.status(500).json({ code: "internal", message: String(e.message || e) });
  }
});

const server = app.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  console.log("peer listening on 127.0.0.1:" + port);
});
process.on("SIGTERM", () => server.close(() => pool.end().then(() => process.exit(0))));
