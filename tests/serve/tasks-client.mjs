// Drives `warden serve` as a client of the MCP Tasks extension: the official
// TypeScript SDK v2 client (@modelcontextprotocol/client 2.4) with the
// extension's reference client (@modelcontextprotocol/ext-tasks 0.2.2),
// speaking 2026-07-28. Prints one JSON line per check and exits 1 with the
// reason on stderr when a check fails.
//
//   node tasks-client.mjs URL TOKEN SLOW_TOOL SLOW_ARGS_JSON LONG_ARGS_JSON
//
// SLOW_TOOL with SLOW_ARGS runs past the server's task-after-ms and ends;
// with LONG_ARGS it runs far longer, and is cancelled.

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { createTaskSessionFromClient, resultFromTaskOutcome } from '@modelcontextprotocol/ext-tasks/client';

const [url, token, slowTool, slowArgs, longArgs] = process.argv.slice(2);
const report = (o) => console.log(JSON.stringify(o));
const fail = (why) => {
  console.error(`FAILED: ${why}`);
  process.exit(1);
};
const check = (cond, why) => cond || fail(why);
const VERSION = '2026-07-28';
const TASKS = 'io.modelcontextprotocol/tasks';
const clientInfo = { name: 'tasks-client', version: '0.2.2' };
const clientCapabilities = { extensions: { [TASKS]: {} } };
const auth = token ? { authorization: `Bearer ${token}` } : {};

const client = new Client(clientInfo, {
  capabilities: clientCapabilities,
  versionNegotiation: { mode: { pin: VERSION } },
});
await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: auth } }));

// The SDK client refuses `resultType: "task"`: ext-tasks sends tool calls and
// task requests through a raw path of the host's (one POST each).
let nextId = 1;
async function rawDispatch(request, options = {}) {
  const id = nextId++;
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': VERSION,
    'mcp-method': request.method,
    ...(request.method === 'tools/call' ? { 'mcp-name': request.params.name } : {}),
    ...auth,
    ...(options.context?.headers ?? {}),
  };
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id, ...request }),
    signal: options.signal,
  });
  const text = await res.text();
  let msg;
  if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
    for (const line of text.split('\n')) {
      if (line.startsWith('data:')) {
        const m = JSON.parse(line.slice(5));
        if (m.id === id) msg = m;
      }
    }
  } else {
    msg = JSON.parse(text);
  }
  return 'error' in msg ? { kind: 'error', error: msg.error } : { kind: 'result', result: msg.result };
}

const session = createTaskSessionFromClient(client, {
  endpointId: url,
  rawDispatch,
  v2RequestFraming: { protocolVersion: VERSION, clientInfo, clientCapabilities },
});

// A quick call is answered at once.
const quick = await session.callTool('text.case', { text: 'quick', to: 'upper' });
check(quick.kind === 'immediate', `a quick call became a ${quick.kind}`);
const q = resultFromTaskOutcome((await quick.settle()).outcome);
check(q.structuredContent?.text === 'QUICK', `quick: ${JSON.stringify(q)}`);
report({ check: 'immediate' });

// A slow call becomes a task, followed to its result.
const slow = await session.callTool(slowTool, JSON.parse(slowArgs));
check(slow.kind === 'task', `a slow call was answered ${slow.kind}`);
const statuses = [];
const settled = await slow.settle({ onEvent: (e) => e.type === 'task' && statuses.push(e.task.status) });
check(settled.outcome.status === 'completed', `slow outcome: ${JSON.stringify(settled.outcome)}`);
const result = resultFromTaskOutcome(settled.outcome);
check(!result.isError, `slow result: ${JSON.stringify(result)}`);
report({ check: 'completed', task: slow.handle.taskId, result, statuses });

// A long one is polled, then cancelled.
const long = await session.callTool(slowTool, JSON.parse(longArgs));
check(long.kind === 'task', `a long call was answered ${long.kind}`);
const id = long.handle.taskId;
const ctl = session.task(id);
await long.detach();
const first = await ctl.snapshot();
check(first.status === 'working', `long task: ${JSON.stringify(first)}`);
await ctl.cancel();
const after = await ctl.snapshot();
check(after.status === 'cancelled', `after cancel: ${JSON.stringify(after)}`);
report({ check: 'cancelled', task: id });

await session.close();
await client.close();
report({ done: true });
