// A Warden capability provider in JavaScript, built with ComponentizeJS
// (`node build.mjs`, which `cargo xtask build-guests` runs).
//
// Capabilities:
//   jsexample.stats  words, lines and characters of a text (pure computation)
//   jsexample.greet  a greeting from the plugin's configuration
//   jsexample.fetch  GET a URL with fetch(): the host decides it by the
//                    plugin's network grant
//   jsexample.read   read a file under /data through wasi:filesystem: only a
//                    granted directory exists
//   jsexample.spin   count to a number: a runaway call stops at the fuel limit
//   jsexample.crash  throw an Error (its message reaches the caller)
//   jsexample.steps  report progress `steps` times (host.progress: the caller
//                    sees it as MCP notifications/progress or CLI lines)
//
// Traps, avoided here:
// - A typed error is `throw { tag: "denied", val: "why" }` (the WIT variant
//   `error`); `throw new Error(...)` is a crash.
// - A fetch the host refuses fails with a bare `TypeError: NetworkError`;
//   the host's reason is in its log and audit record, not in the exception.
// - Fuel: the engine spends more than a million units just to describe the
//   plugin; keep `limits.fuel` at the default (1e9) or give a few 1e8.

import { getDirectories } from "wasi:filesystem/preopens@0.2.12";
import { progress } from "warden:provider/host@0.1.0";

let config = {};

const error = (tag, val) => ({ tag, val });

function stats({ text }) {
  return {
    words: text.split(/\s+/).filter(Boolean).length,
    lines: text.split(/\r?\n/).length - (text.endsWith("\n") ? 1 : 0),
    chars: [...text].length,
  };
}

function greet({ name }) {
  return { greeting: `${config.greeting ?? "Hello"}, ${name}!` };
}

async function fetchUrl({ url }) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw error("denied", `${url}: ${e} (the host's log says why)`);
  }
  return { status: response.status, body: await response.text() };
}

function read({ path }) {
  if (!path.startsWith("/data/")) {
    throw error("invalid-input", `${path}: only files under /data can be read`);
  }
  const granted = getDirectories().find(([, guest]) => guest === "/data");
  if (!granted) throw error("denied", "/data is not granted to this plugin");
  const [dir] = granted;
  let file;
  try {
    file = dir.openAt({}, path.slice("/data/".length), {}, { read: true });
  } catch (e) {
    throw error("denied", `${path}: ${e?.payload ?? e}`);
  }
  const chunks = [];
  let offset = 0n;
  for (;;) {
    const [bytes, end] = file.read(65536n, offset);
    chunks.push(bytes);
    offset += BigInt(bytes.length);
    if (end || bytes.length === 0) break;
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return { text: new TextDecoder().decode(all) };
}

function spin({ rounds }) {
  // Busy work until a limit stops it (fuel or time): shows the limits.
  let n = 0;
  const end = rounds ?? Number.MAX_SAFE_INTEGER;
  while (n < end) n++;
  return { rounds: n };
}

function steps({ steps }) {
  const n = steps ?? 3;
  // u64 is a BigInt; the host paces the reports (the last one always goes).
  for (let i = 1; i <= n; i++) progress(BigInt(i), BigInt(n), `step ${i}`);
  return { steps: n };
}

function crash({ why }) {
  throw new Error(`the JavaScript example fails on purpose: ${why ?? ""}`);
}

const CAPABILITIES = {
  "jsexample.stats": [stats, "Words, lines and characters of a text",
    "[:map [:text :string]]", "[:map [:words :int] [:lines :int] [:chars :int]]"],
  "jsexample.greet": [greet, "A greeting from the configuration",
    "[:map [:name :string]]", "[:map [:greeting :string]]"],
  "jsexample.fetch": [fetchUrl, "GET a URL (needs a network grant)",
    "[:map [:url :string]]", "[:map [:status :int] [:body :string]]"],
  "jsexample.read": [read, "Read a text file under /data (needs a directory grant)",
    "[:map [:path :string]]", "[:map [:text :string]]"],
  "jsexample.spin": [spin, "Count to `rounds` (a runaway call when large)",
    "[:map [:rounds :int?]]", "[:map [:rounds :int]]"],
  "jsexample.crash": [crash, "Throw an Error", ":any", ":any"],
  "jsexample.steps": [steps, "Report progress `steps` times",
    "[:map [:steps :int?]]", "[:map [:steps :int]]"],
};

export const provider = {
  describe() {
    return {
      info: { name: "js-example", version: "0.1.0", description: "A Warden provider written in JavaScript" },
      capabilities: Object.entries(CAPABILITIES).map(([id, [, description, input, output]]) => ({
        id,
        name: id.split(".")[1],
        version: "0.1.0",
        description,
        inputSchema: input,
        outputSchema: output,
        metadata: "{}",
        permissions: [],
        effects: id === "jsexample.fetch" ? ["call:external_api"] : [],
        providerKind: "",
        providerMeta: "",
      })),
    };
  },
  init(text) {
    config = JSON.parse(text);
  },
  async call(id, input) {
    const entry = CAPABILITIES[id];
    if (!entry) throw error("not-found", id);
    let args;
    try {
      args = JSON.parse(input);
    } catch (e) {
      throw error("invalid-input", String(e));
    }
    return JSON.stringify(await entry[0](args));
  },
  health() {
    return { status: "healthy", message: "" };
  },
};
