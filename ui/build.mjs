// Bundles the dashboard into dist/ (embedded into the Go binary by embed.go).
// `npm run build` once, `npm run watch` while editing. No dev server: run
// `bwtracker run` (or the API test server) and reload the page.
import * as esbuild from "esbuild";
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";

const watch = process.argv.includes("--watch");
const out = "dist";

// Clean only what we produce; dist/.gitkeep keeps `go:embed all:dist`
// compiling on a checkout where the UI has not been built yet.
await rm(`${out}/assets`, { recursive: true, force: true });
await mkdir(`${out}/assets`, { recursive: true });
await writeFile(`${out}/.gitkeep`, "");

const opts = {
  entryPoints: { app: "src/main.js" },
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  legalComments: "eof",
  outdir: `${out}/assets`,
  logLevel: "warning",
};

async function statics() {
  await copyFile("index.html", `${out}/index.html`);
  await copyFile("src/favicon.svg", `${out}/favicon.svg`);
}

if (watch) {
  const ctx = await esbuild.context({
    ...opts,
    plugins: [{ name: "statics", setup(b) { b.onEnd(statics); } }],
  });
  await ctx.watch();
  console.log("watching src/ ...");
} else {
  await esbuild.build(opts);
  await statics();
}
