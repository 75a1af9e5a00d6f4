// Builds {{name}}.wasm with ComponentizeJS: npm install && node build.mjs
import { componentize } from "@bytecodealliance/componentize-js";
import { readFileSync, writeFileSync } from "node:fs";

const { component } = await componentize(readFileSync("plugin.js", "utf8"), {
  sourceName: "plugin.js",
  witPath: "wit",
  worldName: "plugin",
  // stdio carries an uncaught exception's message to the host; the plugin
  // uses nothing else of the engine's.
  disableFeatures: ["random", "clocks", "http", "fetch-event"],
});
writeFileSync("{{name}}.wasm", component);
console.log("built {{name}}.wasm; check it with: warden check {{name}}.wasm");
