/**
 * Issue 9 item 1 on the MCP transports (memory engine, the SDK client over Streamable HTTP): a
 * reply over EVENT_MAX_BYTES becomes a JSON-RPC error naming size and limit; only responses to
 * pending server requests, within the limit, reach the workers' shared topic.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { EngineEvent, Subscription } from '../../../shared/engine/engine';
import { MemoryEngine } from '../../../shared/engine/memory';
import { topics } from '../../../shared/protocol';
import { silentLogger } from '../../../shared/logger';
import { createMetrics } from '../../../shared/metrics';
import { RPC_ERRORS } from '../../../shared/protocol';
import { createWorker, type Worker } from '../../../worker/worker';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';

const EVENT_MAX_BYTES = 8192;

let engine: MemoryEngine;
let gateway: GatewayHarness;
let worker: Worker;
let client: Client;
let transport: StreamableHTTPClientTransport;
let workerTopic: Subscription;
const heardByWorkers: EngineEvent[] = [];

beforeAll(async () => {
  engine = new MemoryEngine({
    historyMaxLen: 1000,
    historyTtlS: 3600,
    historyMaxBytes: 64 * 1024,
    eventMaxBytes: EVENT_MAX_BYTES,
  });
  await engine.start();
  gateway = await startGateway({ engine, env: { EVENT_MAX_BYTES: String(EVENT_MAX_BYTES) } });
  worker = createWorker({
    config: gateway.config,
    engine,
    logger: silentLogger(),
    metrics: createMetrics('worker'),
  });
  await worker.start();
  workerTopic = await engine.subscribe([topics.workers], (e) => heardByWorkers.push(e));
  transport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${gateway.tokens.team}` } },
  });
  client = new Client({ name: 'limits', version: '1.0.0' });
  await client.connect(transport);
});

afterAll(async () => {
  await client?.close();
  await workerTopic?.close();
  await gateway?.close();
  await worker?.stop();
  await engine?.close();
});

test('a reply over EVENT_MAX_BYTES comes back as a JSON-RPC error naming size and limit', async () => {
  for (let i = 0; i < 12; i += 1) {
    await client.callTool({
      name: 'create_project',
      arguments: { name: `P${i}`, description: 'd'.repeat(1000) },
    });
  }
  let error: unknown;
  try {
    await client.callTool({ name: 'list_projects', arguments: {} });
  } catch (err) {
    error = err;
  }
  expect((error as McpError).code).toBe(RPC_ERRORS.resultTooLarge);
  expect((error as McpError).message).toMatch(
    /The reply was not sent: Event of \d+ bytes exceeds the 8192-byte limit \(EVENT_MAX_BYTES\)/,
  );
  // The session goes on (tools/list itself, about 16 KB, is over this test's small limit).
  expect(await client.ping()).toEqual({});
});

/** POSTs a body on the client's session, as the SDK would. */
function post(body: unknown) {
  return fetch(`${gateway.url}/mcp`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${gateway.tokens.team}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'Mcp-Session-Id': transport.sessionId!,
      'MCP-Protocol-Version': '2025-11-25',
    },
    body: JSON.stringify(body),
  });
}

test('unsolicited and oversized client responses are refused; nothing reaches the workers', async () => {
  const forged = await post({ jsonrpc: '2.0', id: 'srv-forged', result: { content: [] } });
  expect(forged.status).toBe(400);
  const forgedBody = (await forged.json()) as { error: { code: number; message: string } };
  expect(forgedBody.error.code).toBe(-32600);
  expect(forgedBody.error.message).toMatch(/^Unsolicited response: no server request with id/);

  const numeric = await post({ jsonrpc: '2.0', id: 7, error: { code: 1, message: 'x' } });
  expect(numeric.status).toBe(400);

  const huge = await post({ jsonrpc: '2.0', id: 'srv-x', result: { t: 'x'.repeat(20_000) } });
  expect(huge.status).toBe(413);
  const hugeBody = (await huge.json()) as { error: { message: string } };
  expect(hugeBody.error.message).toMatch(/exceeds the 8192-byte limit \(EVENT_MAX_BYTES\)/);

  // A batch with a refused response publishes none of it (sizes are checked first).
  const batch = await post([
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } },
    { jsonrpc: '2.0', id: 'srv-y', result: { t: 'y'.repeat(20_000) } },
  ]);
  expect(batch.status).toBe(413);

  expect(heardByWorkers.filter((e) => e.event === 'client-response')).toEqual([]);
  expect(heardByWorkers.filter((e) => e.event === 'cancel')).toEqual([]);
});
