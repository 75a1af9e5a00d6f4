// An MCP server on the official TypeScript SDK v2 (`@modelcontextprotocol/server`),
// serving revision 2026-07-28 only (`legacy: 'reject'`), for Warden's tests
// and benchmarks. Streamable HTTP on 127.0.0.1 at /mcp; the chosen port is
// printed as `PORT <n>`.
//
// Tools:
//   add(a, b)      a + b (read-only, idempotent)
//   echo(text)     text
//   fail(message)  a tool error (isError)
//   slow(ms)       sleeps; notes `slow cancelled` or `slow finished` in <log>.events
//   big(n)         n bytes of text
//   ship(order)    a nested object input
//   picture()      structured content plus an image block
//   wipe()         destructive
//
// Options: --port P (0 picks one), --log FILE (one line per HTTP request:
// `METHOD - version`), --sse (always answer with an SSE stream).

import http from 'node:http';
import fs from 'node:fs';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import * as z from 'zod';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const port = Number(opt('--port') ?? 0);
const log = opt('--log');
const sse = args.includes('--sse');

const note = (line) => {
  if (log) fs.appendFileSync(`${log}.events`, `${line}\n`);
};

const text = (t) => ({ content: [{ type: 'text', text: String(t) }] });

function factory() {
  const server = new McpServer({ name: 'warden-ts-test', version: '1.0.0' });
  server.registerTool(
    'add',
    {
      description: 'Adds two integers.',
      inputSchema: z.object({ a: z.number().int(), b: z.number().int() }),
      outputSchema: z.object({ result: z.number().int() }),
      annotations: { readOnlyHint: true, idempotentHint: true },
    },
    async ({ a, b }) => ({ ...text(a + b), structuredContent: { result: a + b } }),
  );
  server.registerTool(
    'echo',
    { description: 'Returns its input.', inputSchema: z.object({ text: z.string() }) },
    async ({ text: t }) => text(t),
  );
  server.registerTool(
    'fail',
    { description: 'Always fails.', inputSchema: z.object({ message: z.string() }) },
    async ({ message }) => ({ ...text(message), isError: true }),
  );
  server.registerTool(
    'slow',
    { description: 'Sleeps `ms` milliseconds.', inputSchema: z.object({ ms: z.number().int() }) },
    async ({ ms }, ctx) => {
      const signal = ctx?.mcpReq?.signal;
      const done = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(true), ms);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      note(done ? 'slow finished' : 'slow cancelled');
      return text('slept');
    },
  );
  server.registerTool(
    'big',
    { description: 'Returns `n` bytes of text.', inputSchema: z.object({ n: z.number().int() }) },
    async ({ n }) => text('x'.repeat(n)),
  );
  server.registerTool(
    'ship',
    {
      description: 'Takes a nested object.',
      inputSchema: z.object({
        order: z.object({ item: z.string(), to: z.object({ street: z.string(), zip: z.number().int() }) }),
      }),
    },
    async ({ order }) => text(`${order.item} to ${order.to.street}`),
  );
  server.registerTool(
    'picture',
    { description: 'Structured content plus an image.', outputSchema: z.object({ width: z.number() }) },
    async () => ({
      content: [
        { type: 'text', text: '{"width":1}' },
        { type: 'image', data: 'iVBORw0KGgo=', mimeType: 'image/png' },
      ],
      structuredContent: { width: 1 },
    }),
  );
  server.registerTool(
    'wipe',
    { title: 'Wipe everything', description: 'Pretends to delete everything.', annotations: { destructiveHint: true } },
    async () => text('wiped'),
  );
  return server;
}

const handler = createMcpHandler(factory, { legacy: 'reject', responseMode: sse ? 'sse' : 'auto' });

const httpServer = http.createServer(async (req, res) => {
  if (log) {
    fs.appendFileSync(log, `${req.method} ${req.headers['mcp-session-id'] ?? '-'} ${req.headers['mcp-protocol-version'] ?? '-'}\n`);
  }
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const aborted = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) aborted.abort();
  });
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (Array.isArray(v)) v.forEach((x) => headers.append(k, x));
    else if (v !== undefined) headers.set(k, v);
  }
  const body = ['GET', 'HEAD'].includes(req.method) ? undefined : Buffer.concat(chunks);
  let response;
  try {
    response = await handler.fetch(
      new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers, body, signal: aborted.signal }),
    );
  } catch (e) {
    res.writeHead(500).end(String(e));
    return;
  }
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  } catch {
    res.destroy();
  }
});
httpServer.on('connection', (s) => s.setNoDelay(true));
httpServer.listen(port, '127.0.0.1', () => {
  console.log(`PORT ${httpServer.address().port}`);
});
