// Bundles the console's sources into server/console/dist, which the Go binary embeds: one script, one
// stylesheet (uPlot's and ours) and the page. `make console` runs it after `npm ci`.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const out = "../server/console/dist";
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: { app: "src/app.js" },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outdir: out,
  legalComments: "eof",
  logLevel: "info",
});
copyFileSync("src/index.html", `${out}/index.html`);
