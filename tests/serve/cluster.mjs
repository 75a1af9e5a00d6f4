// Drives replicas of `warden serve` behind a load balancer with the official
// TypeScript SDK v2 client (@modelcontextprotocol/client 2.4), 2026-07-28:
// N calls of text.case, then an approval whose question one replica asks
// and whose answer (with its requestState) another may take. Prints one
// JSON line per check and exits 1 with the reason on stderr when one fails.
//
//   node cluster.mjs URL N
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, times] = process.argv.slice(2);
const report = (o) => console.log(JSON.stringify(o));
const fail = (why) => {
  console.error(`FAILED: ${why}`);
  process.exit(1);
};
const check = (cond, why) => cond || fail(why);

const client = new Client(
  { name: "ts-cluster", version: "2.4" },
  { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: "auto" } },
);
let asked = 0;
client.setRequestHandler("elicitation/create", async () => {
  asked += 1;
  return { action: "accept", content: { approve: true } };
});
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
check(client.getDiscoverResult() !== undefined, "negotiated 2026-07-28");
for (let n = 0; n < Number(times); n++) {
  const r = await client.callTool({ name: "text.case", arguments: { text: `ts ${n}`, to: "upper" } });
  check(!r.isError && r.structuredContent.text === `TS ${n}`, `call ${n}: ${JSON.stringify(r)}`);
}
report({ check: "calls", times: Number(times) });
const r = await client.callTool({ name: "text.stats", arguments: { text: "one two" } });
check(asked === 1, `asked ${asked} times`);
check(!r.isError && r.structuredContent.words === 2, `approved: ${JSON.stringify(r)}`);
report({ check: "approval" });
await client.close();
report({ done: true });
