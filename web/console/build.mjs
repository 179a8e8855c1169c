// Builds the console into internal/console/assets, where the Go server
// embeds it: console.js (the app and the SDK, bundled), console.css and
// index.html. The output is committed, so the server builds without npm;
// `node build.mjs --check` builds in memory and fails if the committed
// files differ (CI runs it, as it does for generated code).
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { build } from "esbuild";

const here = import.meta.dirname;
const out = resolve(here, "../../internal/console/assets");
const check = process.argv.includes("--check");

const common = { bundle: true, minify: true, write: false, logLevel: "warning", absWorkingDir: here };
const jsOptions = {
  ...common,
  entryPoints: ["src/main.ts"],
  outfile: "console.js",
  format: "esm",
  platform: "browser",
  target: "es2022",
  tsconfig: "tsconfig.json",
  metafile: true,
};
// The bundled packages and their licenses, read from what esbuild put in
// the output, head the bundle (minifying drops the packages' own notices).
const probe = await build(jsOptions);
const packages = new Map();
const used = Object.values(probe.metafile.outputs)[0].inputs;
for (const [input, { bytesInOutput }] of Object.entries(used)) {
  if (bytesInOutput === 0) continue; // parsed, then shaken out
  const m = /^(.*node_modules\/((?:@[^/]+\/)?[^/]+))\//.exec(input);
  if (!m || packages.has(m[2])) continue;
  const pkg = JSON.parse(readFileSync(resolve(here, m[1], "package.json"), "utf8"));
  packages.set(m[2], `${pkg.name}@${pkg.version} (${pkg.license.replace(/^\((.*)\)$/, "$1")})`);
}
const banner = `/* Quarters console (web/console). Bundles ${[...packages.values()].sort().join(", ")}. */`;
const js = await build({ ...jsOptions, metafile: false, banner: { js: banner } });
const css = await build({ ...common, entryPoints: ["src/style.css"], outfile: "console.css" });

const files = {
  "console.js": js.outputFiles[0].contents,
  "console.css": css.outputFiles[0].contents,
  "index.html": readFileSync(join(here, "src/index.html")),
};

if (check) {
  const stale = Object.entries(files).filter(([name, data]) => {
    const path = join(out, name);
    return !existsSync(path) || !Buffer.from(data).equals(readFileSync(path));
  });
  if (stale.length > 0) {
    console.error(`internal/console/assets is stale (${stale.map(([n]) => n).join(", ")}): run 'npm run build' in web/console and commit`);
    process.exit(1);
  }
  console.log("internal/console/assets is fresh");
} else {
  mkdirSync(out, { recursive: true });
  for (const [name, data] of Object.entries(files)) writeFileSync(join(out, name), data);
  for (const [name, data] of Object.entries(files)) console.log(`${name}\t${data.length} bytes`);
}
