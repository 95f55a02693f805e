/**
 * Issue 9 on the seed path (memory engine, a real worker): a result over EVENT_MAX_BYTES never
 * enters history, the client gets an mcp-error naming the size and the limit (item 1); and
 * `initialize` through /mcp/sse/send cannot re-initialize the worker's shared MCP server
 * (item 12).
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { randomUUID } from 'node:crypto';
import { MemoryEngine } from '../../../shared/engine/memory';
import { ZERO_EVENT_ID } from '../../../shared/engine/eventId';
import { topics } from '../../../shared/protocol';
import { silentLogger } from '../../../shared/logger';
import { createMetrics } from '../../../shared/metrics';
import type { ClientMessage } from '../../../shared/types';
import { RPC_ERRORS } from '../../../shared/protocol';
import { createBacklogServer } from '../../../worker/server/backlogServer';
import { createWorker, type Worker } from '../../../worker/worker';
import { EventCollector, READONLY, TEAM, envelope, testConfig, type Token } from './harness';

const EVENT_MAX_BYTES = 8192;

let engine: MemoryEngine;
let worker: Worker;
/** Every MCP server the worker built; the first is the seed path's shared one. */
const servers: McpServer[] = [];

beforeEach(async () => {
  servers.length = 0;
  engine = new MemoryEngine({
    historyMaxLen: 1000,
    historyTtlS: 3600,
    historyMaxBytes: 64 * 1024,
    eventMaxBytes: EVENT_MAX_BYTES,
  });
  await engine.start();
  worker = createWorker({
    config: testConfig(),
    engine,
    logger: silentLogger(),
    metrics: createMetrics('worker'),
    createMcpServer: (store) => {
      const server = createBacklogServer(store);
      servers.push(server);
      return server;
    },
  });
  await worker.start();
});

afterEach(async () => {
  await worker.stop();
  await engine.close();
});

/** One connection of one token: sends commands and waits for their final events. */
async function connect(token: Token) {
  const connectionId = randomUUID();
  const events = await EventCollector.open(engine, connectionId);
  return {
    connectionId,
    events,
    async request(message: ClientMessage) {
      const command = envelope(connectionId, message, token);
      await engine.enqueueCommand(command);
      return events.final(command.requestId);
    },
  };
}

test('a result over EVENT_MAX_BYTES is refused: an mcp-error naming size and limit, nothing large stored', async () => {
  const alice = await connect({ ...TEAM, sub: 'alice' });
  for (let i = 0; i < 12; i += 1) {
    const created = await alice.request({
      method: 'tools/call',
      params: {
        name: 'create_project',
        arguments: { name: `Project ${i}`, description: 'd'.repeat(1000) },
      },
    });
    expect(created.event).toBe('tool-result');
  }
  const listed = await alice.request({
    method: 'tools/call',
    params: { name: 'list_projects', arguments: {} },
    id: 'list-1',
  });
  expect(listed.event).toBe('mcp-error');
  expect(listed.data).toMatchObject({
    method: 'tools/call',
    id: 'list-1',
    error: { code: RPC_ERRORS.resultTooLarge },
  });
  expect(listed.data.error.message).toMatch(
    /^The tool-result was not sent: Event of \d+ bytes exceeds the 8192-byte limit \(EVENT_MAX_BYTES\)/,
  );
  const page = await engine.readHistory(topics.connection(alice.connectionId), ZERO_EVENT_ID, 100);
  for (const event of page.events) expect(event.data.length).toBeLessThanOrEqual(EVENT_MAX_BYTES);

  // The worker goes on: a small call answers.
  const ping = await alice.request({ method: 'ping' });
  expect(ping.event).toBe('mcp-response');
});

test('initialize through the seed API is refused, and another user sees the same server as before', async () => {
  const shared = servers[0].server;
  const bob = await connect({ ...READONLY, sub: 'bob' });
  const mallory = await connect({ ...READONLY, sub: 'mallory' });
  const toolsBefore = await bob.request({ method: 'tools/list' });
  const clientBefore = shared.getClientVersion();
  const capabilitiesBefore = shared.getClientCapabilities();
  expect(clientBefore?.name).toBe('mcpgw-worker-dispatcher');

  const refused = await mallory.request({
    method: 'initialize',
    id: 1,
    params: {
      protocolVersion: '2024-11-05',
      capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } },
      clientInfo: { name: 'mallory', version: '6.6.6' },
    },
  });
  expect(refused.event).toBe('mcp-error');
  expect(refused.data.error.code).toBe(RPC_ERRORS.invalidRequest);
  expect(refused.data.error.message).toContain('initialize is not available on /mcp/sse/send');

  // Nothing of mallory's handshake reached the shared server.
  expect(shared.getClientVersion()).toEqual(clientBefore);
  expect(shared.getClientCapabilities()).toEqual(capabilitiesBefore);
  const toolsAfter = await bob.request({ method: 'tools/list' });
  expect(toolsAfter.event).toBe('mcp-response');
  expect(toolsAfter.data.result).toEqual(toolsBefore.data.result);
});
