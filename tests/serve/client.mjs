// Drives `warden serve` with the official TypeScript SDK v2 client
// (@modelcontextprotocol/client 2.4). Prints one JSON line per check and
// exits 1 with the reason on stderr when a check fails.
//
//   node client.mjs URL auto|legacy
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, mode] = process.argv.slice(2);
const report = (o) => console.log(JSON.stringify(o));
const fail = (why) => {
  console.error(`FAILED: ${why}`);
  process.exit(1);
};
const check = (cond, why) => cond || fail(why);
const text = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("");

let changed = 0;
const answers = [];
const client = new Client(
  { name: "ts-client", version: "2.4" },
  {
    capabilities: { elicitation: { form: {} } },
    versionNegotiation: mode === "auto" ? { mode: "auto" } : undefined,
    listChanged: { tools: { onChanged: () => { changed += 1; } } },
  },
);
client.setRequestHandler("elicitation/create", async () => ({
  action: "accept",
  content: { approve: answers.shift() ?? false },
}));
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const meta = mode === "auto" ? { _meta: { "dev.warden/session": "ts" } } : {};
const modern = client.getDiscoverResult() !== undefined;
check(modern === (mode === "auto"), `negotiated the ${modern ? "2026-07-28" : "2025-11-25"} era in mode ${mode}`);
report({ check: "version", modern });

const { tools } = await client.listTools();
const names = tools.map((t) => t.name);
check(names.join() === [...names].sort().join(), "tools/list is not sorted");
check(names.includes("text.case"), `text.case missing: ${names}`);
report({ check: "list", tools: names.length });

let r = await client.callTool({ name: "text.case", arguments: { text: "ts here", to: "upper" }, ...meta });
check(!r.isError && r.structuredContent.text === "TS HERE", `call: ${JSON.stringify(r)}`);
report({ check: "call" });

r = await client.callTool({ name: "text.case", arguments: { text: 1, to: "upper" }, ...meta }).catch((e) => ({ isError: true, content: [{ type: "text", text: String(e) }] }));
check(r.isError && /invalid/i.test(text(r)), `invalid input: ${JSON.stringify(r)}`);
report({ check: "invalid", text: text(r) });

r = await client.callTool({ name: "json.merge", arguments: { base: {}, patch: {} }, ...meta });
check(r.isError && text(r).includes("refused by policy rule"), `denied: ${text(r)}`);
report({ check: "denied" });

answers.push(true);
r = await client.callTool({ name: "text.stats", arguments: { text: "one two three" }, ...meta });
check(!r.isError && r.structuredContent.words === 3, `approved: ${JSON.stringify(r)}`);
answers.push(false);
r = await client.callTool({ name: "text.stats", arguments: { text: "no" }, ...meta });
check(r.isError && text(r).includes("not approved"), `refused: ${text(r)}`);
report({ check: "approval" });

const counts = [];
for (let i = 0; i < 3; i++) {
  r = await client.callTool({ name: "hostile.session-count", arguments: {}, ...meta });
  counts.push(r.structuredContent.result);
}
check(counts.join() === "1,2,3", `session counts ${counts}`);
report({ check: "session", counts });
await client.close();
report({ done: true, changed });
