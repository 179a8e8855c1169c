// Copies the Redoc standalone bundle, pinned in package-lock.json, into
// dist/, which the Go package embeds and serves at /docs: the page needs no
// CDN at run time. dist/ is committed (go build must work without npm), and
// CI runs this again and fails if the copy differs.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const here = import.meta.dirname;
const dist = join(here, "dist");
mkdirSync(dist, { recursive: true });

const redoc = dirname(require.resolve("redoc/package.json"));
const { version } = JSON.parse(readFileSync(join(redoc, "package.json"), "utf8"));
// The bundle's one fetch from a CDN is the logo of its "API docs by
// Redocly" link; the page allows only its own origin, so the logo becomes
// an empty inline image (the link stays).
const cdnLogo = "https://cdn.redoc.ly/redoc/logo-mini.svg";
const bundle = readFileSync(join(redoc, "bundles/redoc.standalone.js"), "utf8");
if (bundle.split(cdnLogo).length !== 2) throw new Error(`expected one ${cdnLogo} in the Redoc bundle`);
writeFileSync(
  join(dist, "redoc.standalone.js"),
  bundle.replace(cdnLogo, "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"),
);
// The bundle's licence notices travel with it.
writeFileSync(
  join(dist, "redoc.standalone.js.LICENSE.txt"),
  `Redoc ${version} (MIT), https://github.com/Redocly/redoc\n\n` +
    readFileSync(join(redoc, "LICENSE"), "utf8") +
    "\n" +
    readFileSync(join(redoc, "bundles/redoc.standalone.js.LICENSE.txt"), "utf8"),
);
copyFileSync(join(here, "index.html"), join(dist, "index.html"));
console.log(`dist/: redoc ${version}`);
