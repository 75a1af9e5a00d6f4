/* An A2A agent on the official JavaScript SDK (@a2a-js/sdk 1.3.0), for Warden's tests;
the twin of agent.py. Run `npm ci` in tests/a2a first.

Options: --port P (0 picks one; the chosen port is printed as `PORT <n>`),
--log FILE (one line per request: `<path> <A2A-Version or -> <JSON-RPC method or ->
<authorization or ->`; what the skills note goes to FILE.events), --era 1.0|both|0.3
(`1.0`: 1.0 only; `both`: 1.0, and 0.3 beside it on one URL for requests whose
A2A-Version is 0.3 or absent, one 1.0 card listing both interfaces; `0.3`: 0.3 only,
with a 0.3 card), --token T (JSON-RPC requests need `Bearer T`; the card stays
public), --no-stream (the card says it cannot stream). It exits when its stdin, a pipe, closes.

The SDK picks the protocol by the A2A-Version header, not by the method name:
`1.0` (exactly) gets the 1.0 methods (SendMessage, ...), `0.3` or no header the 0.3
ones (message/send, ...) when 0.3 is on.

Skills (picked by message metadata `skill`, else the text's first word):
echo (a reply without a task), data (a task with a data artifact), count
(three text chunks of one artifact, streamed), slow (works until cancelled or
30 s; notes `slow cancelled`), ask (input-required; the answer completes it),
fail (failed), turn (says how many messages its conversation has seen).
*/
import { randomUUID } from 'node:crypto';
import { appendFileSync, fstatSync } from 'node:fs';
import { parseArgs } from 'node:util';
import express from 'express';
import { Role, TaskState } from '@a2a-js/sdk';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    log: { type: 'string' },
    era: { type: 'string', default: 'both' },
    token: { type: 'string' },
    'no-stream': { type: 'boolean', default: false },
  },
});
if (!['1.0', 'both', '0.3'].includes(args.era)) throw new Error(`--era ${args.era}: 1.0, both or 0.3`);
const TURNS = new Map();
const note = (line) => args.log && appendFileSync(`${args.log}.events`, `${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();

const skill = (id, description) => ({
  id, name: id, description, tags: [id], examples: [`${id} hello`],
  inputModes: [], outputModes: [], securityRequirements: [],
});
const versions = { '1.0': ['1.0'], both: ['1.0', '0.3'], '0.3': ['0.3'] }[args.era];
const CARD = {
  name: 'warden-test-agent-js',
  description: "A2A agent for Warden's tests",
  version: '1.0.0',
  supportedInterfaces: versions.map((v) => ({ url: '', protocolBinding: 'JSONRPC', tenant: '', protocolVersion: v })),
  provider: undefined,
  capabilities: { streaming: !args['no-stream'], pushNotifications: false, extensions: [], extendedAgentCard: false },
  securitySchemes: {},
  securityRequirements: [],
  defaultInputModes: ['text/plain', 'application/json'],
  defaultOutputModes: ['text/plain', 'application/json'],
  skills: [
    skill('echo', 'Replies with the text it was sent'),
    skill('data', 'Completes a task with a data artifact'),
    skill('count', 'Three chunks of one text artifact'),
    skill('slow', 'Works until cancelled'),
    skill('ask', 'Asks for a name, then thanks'),
    skill('fail', 'Fails'),
    skill('turn', 'Counts the messages of its conversation'),
  ],
  signatures: [],
};

const part = (content) => ({ content, metadata: undefined, filename: '', mediaType: '' });
const textPart = (value) => part({ $case: 'text', value });
const dataPart = (value) => part({ $case: 'data', value });
const message = (parts, contextId, taskId = '') => ({
  messageId: randomUUID(), contextId, taskId, role: Role.ROLE_AGENT, parts,
  metadata: undefined, extensions: [], referenceTaskIds: [],
});

const contexts = new Map(); // taskId -> contextId, for cancelTask
const running = new Set(); // slow tasks at work
const cancelled = new Set();

const executor = {
  async execute(ctx, bus) {
    const { taskId, contextId } = ctx;
    const msg = ctx.userMessage;
    const text = msg.parts.filter((p) => p.content?.$case === 'text').map((p) => p.content.value).join('\n');
    const status = (state, say) => bus.publish(AgentEvent.statusUpdate({
      taskId, contextId, metadata: undefined,
      status: { state, message: say === undefined ? undefined : message([textPart(say)], contextId, taskId), timestamp: now() },
    }));
    if (ctx.task?.status?.state === TaskState.TASK_STATE_INPUT_REQUIRED) { // an answer to input-required
      bus.publish(AgentEvent.task(ctx.task));
      status(TaskState.TASK_STATE_COMPLETED, `thanks, ${text}`);
      return;
    }
    const words = text.split(/\s+/).filter(Boolean);
    const name = msg.metadata?.skill || (words[0] ?? 'echo').toLowerCase();
    if (name === 'echo' || name === 'turn') {
      TURNS.set(contextId, (TURNS.get(contextId) ?? 0) + 1);
      const reply = name === 'echo' ? `echo: ${text}` : `turn ${TURNS.get(contextId)}`;
      const data = msg.parts.filter((p) => p.content?.$case === 'data').map((p) => dataPart(p.content.value));
      bus.publish(AgentEvent.message(message([textPart(reply), ...data], contextId)));
      return;
    }
    contexts.set(taskId, contextId);
    bus.publish(AgentEvent.task(ctx.task ?? {
      id: taskId, contextId, status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: undefined },
      artifacts: [], history: [msg], metadata: undefined,
    }));
    const artifact = (artifactId, name, parts, append = false, lastChunk = false) => bus.publish(AgentEvent.artifactUpdate({
      taskId, contextId, append, lastChunk, metadata: undefined,
      artifact: { artifactId, name, description: '', parts, metadata: undefined, extensions: [] },
    }));
    if (name === 'data') {
      artifact(randomUUID(), 'result', [dataPart({ answer: 42, items: ['a', 'b'] })]);
      status(TaskState.TASK_STATE_COMPLETED);
    } else if (name === 'count') {
      status(TaskState.TASK_STATE_WORKING, 'counting');
      for (let i = 0; i < 3; i++) {
        await sleep(50);
        artifact('count', 'count', [textPart(`chunk ${i}`)], i > 0, i === 2);
      }
      status(TaskState.TASK_STATE_COMPLETED, 'counted');
    } else if (name === 'slow') {
      running.add(taskId);
      status(TaskState.TASK_STATE_WORKING, 'working');
      note('slow started');
      for (let i = 0; i < 300 && !cancelled.has(taskId); i++) await sleep(100);
      running.delete(taskId);
      if (cancelled.delete(taskId)) return; // cancelTask published CANCELED
      note('slow finished');
      status(TaskState.TASK_STATE_COMPLETED);
    } else if (name === 'ask') {
      status(TaskState.TASK_STATE_INPUT_REQUIRED, 'What is your name?');
    } else if (name === 'fail') {
      status(TaskState.TASK_STATE_FAILED, 'it failed on purpose');
    } else {
      status(TaskState.TASK_STATE_REJECTED, `no skill ${name}`);
    }
  },

  // Called while the task's event bus lives (slow working, ask waiting); it
  // must publish CANCELED there, which CancelTask waits for.
  async cancelTask(taskId, bus) {
    note('slow cancelled');
    const contextId = contexts.get(taskId) ?? '';
    if (running.has(taskId)) cancelled.add(taskId);
    bus.publish(AgentEvent.statusUpdate({
      taskId, contextId, metadata: undefined,
      status: { state: TaskState.TASK_STATE_CANCELED, message: message([textPart('cancelled')], contextId, taskId), timestamp: now() },
    }));
  },
};

const requestHandler = new DefaultRequestHandler(CARD, new InMemoryTaskStore(), executor);
const legacyCompat = { enabled: args.era !== '1.0' };
const app = express();
const gate = (req, res, method) => { // the request log; with --token, a 401 unless authorised
  if (args.log) appendFileSync(args.log, `${req.path} ${req.get('a2a-version') || '-'} ${method} ${req.get('authorization') || '-'}\n`);
  if (!args.token || req.method !== 'POST' || req.get('authorization') === `Bearer ${args.token}`) return false;
  res.status(401).json({ error: 'unauthorized' });
  return true;
};
app.use(express.json(), (err, req, res, _next) => { // bad JSON: -32700
  if (!gate(req, res, '-')) res.json({ jsonrpc: '2.0', id: null, error: { code: -32700, message: `Parse error: ${err.message}` } });
});
app.use((req, res, next) => gate(req, res, typeof req.body?.method === 'string' ? req.body.method : '-') || next());
// The card: with `0.3` the SDK's own translation serves a 0.3 card to requests without
// A2A-Version 1.0; otherwise the 1.0 card always (the compat card handler would hand
// header-less requests, as card fetches usually are, a 0.3 card).
app.use('/.well-known/agent-card.json',
  agentCardHandler({ agentCardProvider: requestHandler, legacyCompat: { enabled: args.era === '0.3' } }));
app.use(jsonRpcHandler({ requestHandler, userBuilder: UserBuilder.noAuthentication, legacyCompat }));

const server = app.listen(Number(args.port), '127.0.0.1', () => {
  const { port } = server.address();
  for (const i of CARD.supportedInterfaces) i.url = `http://127.0.0.1:${port}/`;
  process.stdout.write(`PORT ${port}\n`);
});
// Exits when the test process that started it ends (its stdin, a pipe, closes).
if (fstatSync(0).isFIFO()) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
