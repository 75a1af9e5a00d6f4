// An MCP server that runs tools as tasks, for Warden's tests: the official
// TypeScript SDK v2 (`@modelcontextprotocol/server`, its low-level `Server`)
// with the task vocabulary of `@modelcontextprotocol/ext-tasks`. The SDK has
// no server side for tool tasks, so the task table is kept here.
//
// One endpoint serves both generations:
//   2026-07-28 with the `io.modelcontextprotocol/tasks` extension: a client
//     that declares it gets a task for every call (flat, `resultType: "task"`);
//     `tasks/get` carries the result, `tasks/update`, `tasks/cancel`.
//   2025-11-25 core tasks: tools declare `execution.taskSupport`; a call with
//     `task: {}` gets `{task}`; `tasks/get`, `tasks/result`, `tasks/cancel`.
//
// Tools:
//   slow(ms)        task-only: works `ms`, reporting steps in statusMessage;
//                   notes `slow finished` or `slow cancelled`
//   sum(a, b)       task optional: a + b
//   broken()        task-only: the task fails (a JSON-RPC error)
//   ask()           task-only, 2026-07-28: asks the user (input_required)
//
// Options: --port P (0 picks one), --log FILE (one line per HTTP request:
// `METHOD session version`; `FILE.events` gets `rpc <method> <Mcp-Name>` per
// JSON-RPC request and what the tools noted).

import http from 'node:http';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import * as z from 'zod';
import { Server, createMcpHandler, ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/server';
import { TASKS_EXTENSION_ID_V2 } from '@modelcontextprotocol/ext-tasks/core/v2';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const port = Number(opt('--port') ?? 0);
const log = opt('--log');
const note = (line) => {
  if (log) fs.appendFileSync(`${log}.events`, `${line}\n`);
};

const TTL_MS = 60_000;
const POLL_MS = 50;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const tasks = new Map();
const now = () => new Date().toISOString();

function setStatus(t, status, message) {
  t.status = status;
  t.statusMessage = message;
  t.lastUpdatedAt = now();
  for (const w of t.waiters) w();
  t.waiters.clear();
}

// Runs `work(task)` in the background; its outcome settles the task.
function createTask(work, modern) {
  const t = {
    taskId: randomUUID(),
    status: 'working',
    statusMessage: 'started',
    createdAt: now(),
    lastUpdatedAt: now(),
    abort: new AbortController(),
    waiters: new Set(),
    inputRequests: undefined,
    answer: undefined,
  };
  tasks.set(t.taskId, t);
  Promise.resolve()
    .then(() => work(t))
    .then(
      (result) => {
        if (t.status === 'cancelled') return;
        t.result = modern ? { resultType: 'complete', ...result } : result;
        setStatus(t, 'completed', 'done');
      },
      (err) => {
        if (t.status === 'cancelled') return;
        t.error = { code: err?.code ?? -32603, message: String(err?.message ?? err) };
        setStatus(t, 'failed', t.error.message);
      },
    );
  return t;
}

function modernTask(t, detailed) {
  const v = {
    taskId: t.taskId,
    status: t.status,
    statusMessage: t.statusMessage,
    createdAt: t.createdAt,
    lastUpdatedAt: t.lastUpdatedAt,
    ttlMs: TTL_MS,
    pollIntervalMs: POLL_MS,
  };
  if (detailed && t.status === 'completed') v.result = t.result;
  if (detailed && t.status === 'failed') v.error = t.error;
  if (detailed && t.status === 'input_required') v.inputRequests = t.inputRequests;
  return v;
}

function legacyTask(t) {
  return {
    taskId: t.taskId,
    status: t.status,
    statusMessage: t.statusMessage,
    createdAt: t.createdAt,
    lastUpdatedAt: t.lastUpdatedAt,
    ttl: TTL_MS,
    pollInterval: POLL_MS,
  };
}

function lookup(taskId) {
  const t = tasks.get(taskId);
  if (!t) throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'Failed to retrieve task: Task not found');
  return t;
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    }, { once: true });
  });

const TOOLS = [
  { name: 'slow', description: 'Works `ms` milliseconds, as a task.', support: 'required',
    inputSchema: { type: 'object', properties: { ms: { type: 'integer' } }, required: ['ms'] } },
  { name: 'sum', description: 'Adds two integers, as a task if the client allows.', support: 'optional',
    inputSchema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'] },
    outputSchema: { type: 'object', properties: { result: { type: 'integer' } }, required: ['result'] } },
  { name: 'broken', description: 'A task that fails.', support: 'required', inputSchema: { type: 'object' } },
  { name: 'ask', description: 'A task that asks the user for input.', support: 'required', inputSchema: { type: 'object' } },
];

async function slow(t, ms) {
  const steps = 4;
  try {
    for (let i = 1; i <= steps; i++) {
      await sleep(ms / steps, t.abort.signal);
      t.statusMessage = `step ${i} of ${steps}`;
      t.lastUpdatedAt = now();
    }
  } catch (e) {
    note('slow cancelled');
    throw e;
  }
  note('slow finished');
  return { content: [{ type: 'text', text: `worked ${ms} ms` }] };
}

function work(name, a) {
  switch (name) {
    case 'slow':
      return (t) => slow(t, Number(a?.ms ?? 1000));
    case 'sum':
      return async () => ({
        content: [{ type: 'text', text: String(a.a + a.b) }],
        structuredContent: { result: a.a + a.b },
      });
    case 'broken':
      return async () => {
        throw new ProtocolError(ProtocolErrorCode.InternalError, 'the disk is on fire');
      };
    default:
      return (t) => {
        t.inputRequests = { name: { method: 'elicitation/create', params: { message: 'Your name?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } } } } } };
        setStatus(t, 'input_required', 'waiting for a name');
        return new Promise(() => {});
      };
  }
}

function declared(ctx) {
  const caps = ctx.mcpReq.envelope?.['io.modelcontextprotocol/clientCapabilities'];
  return caps?.extensions?.[TASKS_EXTENSION_ID_V2] !== undefined;
}

function needsExtension() {
  const e = new ProtocolError(-32021, 'Missing required client capability');
  e.data = { requiredCapabilities: { extensions: { [TASKS_EXTENSION_ID_V2]: {} } } };
  return e;
}

const TaskId = { params: z.object({ taskId: z.string() }).passthrough() };

function modern(server) {
  // tools/call from the fallback handler: the wrapped one would reshape a
  // task result.
  server.fallbackRequestHandler = async (request, ctx) => {
    if (request.method !== 'tools/call') throw new ProtocolError(ProtocolErrorCode.MethodNotFound, 'Method not found');
    const { name, arguments: a } = request.params;
    const tool = TOOLS.find((t) => t.name === name);
    if (!tool) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Tool ${name} not found`);
    if (!declared(ctx)) {
      if (tool.support === 'required') throw needsExtension();
      return work(name, a)({ abort: new AbortController() });
    }
    return { resultType: 'task', ...modernTask(createTask(work(name, a), true), false) };
  };
  server.setRequestHandler('tasks/get', TaskId, (p, ctx) => {
    if (!declared(ctx)) throw needsExtension();
    return modernTask(lookup(p.taskId), true);
  });
  server.setRequestHandler('tasks/update', TaskId, (p, ctx) => {
    if (!declared(ctx)) throw needsExtension();
    lookup(p.taskId);
    return {};
  });
  server.setRequestHandler('tasks/cancel', TaskId, (p, ctx) => {
    if (!declared(ctx)) throw needsExtension();
    const t = lookup(p.taskId);
    if (!TERMINAL.has(t.status)) {
      t.abort.abort();
      setStatus(t, 'cancelled', 'cancelled by the client');
    }
    return {};
  });
}

function legacy(server) {
  server.fallbackRequestHandler = async (request) => {
    if (request.method !== 'tools/call') throw new ProtocolError(ProtocolErrorCode.MethodNotFound, 'Method not found');
    const { name, arguments: a, task } = request.params;
    const tool = TOOLS.find((t) => t.name === name && t.name !== 'ask');
    if (!tool) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Tool ${name} not found`);
    if (task === undefined) {
      if (tool.support === 'required') {
        throw new ProtocolError(ProtocolErrorCode.MethodNotFound, `Tool ${name} requires task-augmented execution`);
      }
      return work(name, a)({ abort: new AbortController() });
    }
    return { task: legacyTask(createTask(work(name, a), false)) };
  };
  server.setRequestHandler('tasks/get', (r) => legacyTask(lookup(r.params.taskId)));
  server.setRequestHandler('tasks/cancel', (r) => {
    const t = lookup(r.params.taskId);
    if (TERMINAL.has(t.status)) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `task is ${t.status}`);
    t.abort.abort();
    setStatus(t, 'cancelled', 'cancelled by the client');
    return legacyTask(t);
  });
  server.setRequestHandler('tasks/result', async (r) => {
    const t = lookup(r.params.taskId);
    while (!TERMINAL.has(t.status)) await new Promise((w) => t.waiters.add(w));
    if (t.status === 'completed') return t.result;
    if (t.status === 'failed') throw new ProtocolError(t.error.code, t.error.message);
    throw new ProtocolError(ProtocolErrorCode.InvalidParams, `task ${t.taskId} was cancelled`);
  });
}

function factory({ era }) {
  const isModern = era === 'modern';
  const server = new Server(
    { name: 'warden-tasks-test', version: '1.0.0' },
    {
      capabilities: {
        tools: {},
        ...(isModern
          ? { extensions: { [TASKS_EXTENSION_ID_V2]: {} } }
          : { tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } }),
      },
    },
  );
  server.setRequestHandler('tools/list', () => ({
    tools: TOOLS.filter((t) => isModern || t.name !== 'ask').map(({ support, ...t }) =>
      isModern ? t : { ...t, execution: { taskSupport: support } },
    ),
  }));
  if (isModern) modern(server);
  else legacy(server);
  return server;
}

const handler = createMcpHandler(factory);

const httpServer = http.createServer(async (req, res) => {
  if (log) {
    fs.appendFileSync(log, `${req.method} ${req.headers['mcp-session-id'] ?? '-'} ${req.headers['mcp-protocol-version'] ?? '-'}\n`);
  }
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = ['GET', 'HEAD'].includes(req.method) ? undefined : Buffer.concat(chunks);
  if (body) {
    try {
      const m = JSON.parse(body.toString('utf8'));
      if (m.method && m.id !== undefined) note(`rpc ${m.method} ${req.headers['mcp-name'] ?? '-'}`);
    } catch {}
  }
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (Array.isArray(v)) v.forEach((x) => headers.append(k, x));
    else if (v !== undefined) headers.set(k, v);
  }
  let response;
  try {
    response = await handler.fetch(new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers, body }));
  } catch (e) {
    res.writeHead(500).end(String(e));
    return;
  }
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(response.body ? Buffer.from(await response.arrayBuffer()) : undefined);
});
httpServer.listen(port, '127.0.0.1', () => {
  console.log(`PORT ${httpServer.address().port}`);
});
