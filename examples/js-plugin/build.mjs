// Builds plugin.js into a component with ComponentizeJS:
//   node build.mjs [OUT.wasm]        (default: js-example.wasm)
// Needs `npm ci` here first (cargo xtask build-guests runs both).
import { componentize } from "@bytecodealliance/componentize-js";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const out = resolve(process.argv[2] ?? join(here, "js-example.wasm"));

// The world file with its dependencies beside it: the deps-free Warden
// plugin world and the WASI packages the file system needs.
const wit = mkdtempSync(join(tmpdir(), "warden-js-wit-"));
try {
  cpSync(join(here, "wit/world.wit"), join(wit, "world.wit"));
  cpSync(join(repo, "wit/plugin/warden.wit"), join(wit, "deps/warden/warden.wit"));
  for (const pkg of ["filesystem", "io", "clocks"]) {
    cpSync(join(repo, "wit/deps", pkg), join(wit, "deps", pkg), { recursive: true });
  }
  const started = Date.now();
  const { component } = await componentize(readFileSync(join(here, "plugin.js"), "utf8"), {
    sourceName: "plugin.js",
    witPath: wit,
    worldName: "js-example",
    // fetch() needs the engine's HTTP support, and stdio carries the message
    // of an uncaught exception to the host (the cause of a crash).
    disableFeatures: ["random", "clocks", "fetch-event"],
  });
  writeFileSync(out, component);
  console.log(`built ${out} (${(component.length / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} finally {
  rmSync(wit, { recursive: true, force: true });
}
