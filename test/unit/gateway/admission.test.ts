/**
 * Admission of commands at the gateway (memory engine): COMMAND_QUEUE_MAX answers 503 and
 * MAX_INFLIGHT_PER_TOKEN 429, both with Retry-After, before anything is queued, on the seed
 * API and on the MCP transports; refusals are counted.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MemoryEngine } from '../../../shared/engine/memory';
import { createMetrics } from '../../../shared/metrics';
import { silentLogger } from '../../../shared/logger';
import { createWorker, type Worker } from '../../../worker/worker';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { openSseClient, type SseClient } from '../../helpers/sseClient';
import { api, expectError } from './api';

async function refusals(gw: GatewayHarness): Promise<Record<string, number>> {
  const { values } = await gw.metrics.commandsRefused.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.reason), v.value]));
}

describe('POST /mcp/sse/send admission (no worker: nothing leaves the queue)', () => {
  let gw: GatewayHarness;
  const clients: SseClient[] = [];
  beforeAll(async () => {
    gw = await startGateway({ env: { COMMAND_QUEUE_MAX: '3', MAX_INFLIGHT_PER_TOKEN: '2' } });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await gw.close();
  });

  const list = { method: 'tools/call', params: { name: 'list_projects', arguments: {} } };

  it('answers 429 inflight_limit past MAX_INFLIGHT_PER_TOKEN, then 503 queue_full past COMMAND_QUEUE_MAX', async () => {
    const alice = gw.token({ type: 'team', sub: 'alice', ttl: '1h' });
    const bob = gw.token({ type: 'readonly', sub: 'bob', ttl: '1h' });
    const aliceStream = await openSseClient(gw.url, alice);
    const bobStream = await openSseClient(gw.url, bob);
    clients.push(aliceStream, bobStream);
    const send = (token: string, connectionId: string) =>
      api(gw.url, '/mcp/sse/send', { token, json: { connectionId, message: list } });

    expect((await send(alice, aliceStream.connectionId)).status).toBe(202);
    expect((await send(alice, aliceStream.connectionId)).status).toBe(202);
    const tooMany = await send(alice, aliceStream.connectionId);
    expect(expectError(tooMany, 429, 'inflight_limit').message).toMatch(/MAX_INFLIGHT_PER_TOKEN/);
    expect(tooMany.headers.get('retry-after')).toMatch(/^\d+$/);

    // Another token is not held back by alice's limit, only by the queue's.
    expect((await send(bob, bobStream.connectionId)).status).toBe(202);
    const full = await send(bob, bobStream.connectionId);
    expect(expectError(full, 503, 'queue_full').message).toMatch(/COMMAND_QUEUE_MAX=3/);
    expect(full.headers.get('retry-after')).toMatch(/^\d+$/);

    expect(await gw.engine.commandBacklog()).toMatchObject({ waiting: 3 });
    expect(await refusals(gw)).toEqual({ inflight_limit: 1, queue_full: 1 });
  });
});

describe('MCP transports admission', () => {
  let engine: MemoryEngine;
  let gw: GatewayHarness;
  let worker: Worker;
  const clients: Client[] = [];

  beforeAll(async () => {
    engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
    await engine.start();
    gw = await startGateway({
      engine,
      env: { MAX_INFLIGHT_PER_TOKEN: '2', TOOL_TIMEOUT_MS: '1000' },
    });
    worker = createWorker({
      config: gw.config,
      engine,
      logger: silentLogger(),
      metrics: createMetrics('worker'),
    });
    await worker.start();
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await gw.close();
    await worker.stop();
    await engine.close();
  });

  it('POST /mcp past MAX_INFLIGHT_PER_TOKEN: 429 with Retry-After and a JSON-RPC error, nothing queued', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${gw.tokens.readonly}` } },
    });
    const client = new Client({ name: 'admission-test', version: '1.0.0' });
    await client.connect(transport);
    clients.push(client);
    const controller = new AbortController();
    const long = { name: 'simulate_work', arguments: { steps: 20, delayMs: 100 } };
    let progressed = 0;
    const running = [1, 2].map(() =>
      client
        .callTool(long, undefined, {
          signal: controller.signal,
          onprogress: () => (progressed += 1),
        })
        .catch(() => undefined),
    );
    // Both in flight (progress seen), so the third is refused.
    for (let i = 0; i < 200 && progressed < 2; i += 1) await new Promise((r) => setTimeout(r, 20));
    const before = await engine.commandBacklog();

    await expect(client.callTool({ name: 'list_projects', arguments: {} })).rejects.toThrow(
      /MAX_INFLIGHT_PER_TOKEN/,
    );
    const raw = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${gw.tokens.readonly}`,
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
        'Mcp-Session-Id': transport.sessionId!,
        'MCP-Protocol-Version': '2025-11-25',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 9,
        method: 'tools/call',
        params: { name: 'list_projects', arguments: {} },
      }),
    });
    expect(raw.status).toBe(429);
    expect(raw.headers.get('retry-after')).toMatch(/^\d+$/);
    // The refusal echoes the request's id (JSON-RPC ids on edge errors, issue 9).
    expect(await raw.json()).toEqual({
      jsonrpc: '2.0',
      id: 9,
      error: { code: -32000, message: expect.stringMatching(/MAX_INFLIGHT_PER_TOKEN/) },
    });
    expect(await engine.commandBacklog()).toEqual(before);
    controller.abort();
    await Promise.all(running);
    // A call after the others finished goes through again.
    for (let i = 0; i < 200; i += 1) {
      const { waiting, pending } = await engine.commandBacklog();
      if (waiting + pending === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const listed = await client.callTool({ name: 'list_projects', arguments: {} });
    expect(listed.isError).toBeFalsy();
  });

  it('a call past TOOL_TIMEOUT_MS gets a JSON-RPC error naming the limit (MCP session path)', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${gw.tokens.team}` } },
    });
    const client = new Client({ name: 'timeout-test', version: '1.0.0' });
    await client.connect(transport);
    clients.push(client);
    const started = Date.now();
    await expect(
      client.callTool({ name: 'simulate_work', arguments: { steps: 20, delayMs: 200 } }),
    ).rejects.toThrow(/-32003.*timed out after 1000 ms \(TOOL_TIMEOUT_MS\)/);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
