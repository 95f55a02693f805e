import type { QueuedCommand } from '../../../shared/engine/engine';
import { topics } from '../../../shared/protocol';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { openSseClient, type SseClient } from '../../helpers/sseClient';
import { waitFor } from '../../../devSupport/waitFor';
import { api, expectError } from './api';

const consumeOptions = {
  consumerId: 'test-consumer',
  concurrency: 4,
  claimIdleMs: 60_000,
  maxDeliveries: 3,
  onDeadLetter: async () => undefined,
};

describe('POST /mcp/sse/send', () => {
  let gw: GatewayHarness;
  let client: SseClient;
  beforeAll(async () => {
    // No worker consumes here: in-flight commands pile up, so the per-token limit is raised
    // (test/unit/gateway/admission.test.ts covers it).
    gw = await startGateway({ env: { MAX_BODY_BYTES: '2048', MAX_INFLIGHT_PER_TOKEN: '1000' } });
    client = await openSseClient(gw.url, gw.tokens.team);
  });
  afterAll(async () => {
    client.close();
    await gw.close();
  });

  const send = (json: unknown, token = gw.tokens.team) =>
    api(gw.url, '/mcp/sse/send', { token, json });

  it('queues a CommandEnvelope and answers 202 with its requestId', async () => {
    const res = await send({
      connectionId: client.connectionId,
      message: { method: 'tools/call', params: { name: 'list_projects', arguments: {} }, id: 7 },
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) });

    const received: QueuedCommand[] = [];
    const consumer = gw.engine.consumeCommands(async (c) => {
      received.push(c);
    }, consumeOptions);
    try {
      await waitFor(() => received.length === 1, 5000, 'command consumed');
    } finally {
      await consumer.stop();
    }
    expect(received[0].command).toEqual({
      requestId: res.body.requestId,
      connectionId: client.connectionId,
      sub: 'team-1',
      tokenType: 'team',
      message: { method: 'tools/call', params: { name: 'list_projects', arguments: {} }, id: 7 },
      enqueuedAt: expect.any(Number),
    });
    expect(Math.abs(received[0].command.enqueuedAt - Date.now())).toBeLessThan(10_000);
  });

  it('carries the token tool allow-list into the envelope', async () => {
    const token = gw.token({ type: 'team', sub: 'tools-1', ttl: '1h', tools: ['list_projects'] });
    const own = await openSseClient(gw.url, token);
    const received: QueuedCommand[] = [];
    const consumer = gw.engine.consumeCommands(async (c) => {
      received.push(c);
    }, consumeOptions);
    try {
      const res = await send(
        { connectionId: own.connectionId, message: { method: 'tools/list' } },
        token,
      );
      expect(res.status).toBe(202);
      await waitFor(() => received.length === 1, 5000, 'command consumed');
      expect(received[0].command).toMatchObject({ sub: 'tools-1', tools: ['list_projects'] });
    } finally {
      await consumer.stop();
      own.close();
    }
  });

  it('delivers a worker result on the right stream only', async () => {
    const other = await openSseClient(gw.url, gw.tokens.team);
    // A stand-in worker: answers each command on its connection's topic, as the real one does.
    const consumer = gw.engine.consumeCommands(async ({ command }) => {
      await gw.engine.publish(
        topics.connection(command.connectionId!),
        'mcp-response',
        JSON.stringify({
          type: 'mcp-response',
          method: command.message.method,
          requestId: command.requestId,
          result: { tools: [] },
          timestamp: new Date().toISOString(),
        }),
      );
    }, consumeOptions);
    try {
      const res = await send({
        connectionId: client.connectionId,
        message: { method: 'tools/list' },
      });
      expect(res.status).toBe(202);
      const result = await client.next((e) => e.json.requestId === res.body.requestId);
      expect(result.event).toBe('mcp-response');
      expect(result.json).toMatchObject({
        type: 'mcp-response',
        method: 'tools/list',
        result: { tools: [] },
      });
      expect(result.id).toMatch(new RegExp(`^${client.connectionId}_\\d+-\\d+_\\d+-\\d+$`));
      // The other stream of the same token sees nothing of it (its heartbeats aside).
      await other.next((e) => e.event === 'mcp-notification');
      expect(other.events.filter((e) => e.json.requestId !== undefined)).toEqual([]);
    } finally {
      await consumer.stop();
      other.close();
    }
  });

  it('publishes notifications/cancelled to every worker instead of queueing it', async () => {
    const heard: unknown[] = [];
    const sub = await gw.engine.subscribe([topics.workers], (e) => heard.push(JSON.parse(e.data)));
    const res = await send({
      connectionId: client.connectionId,
      message: { method: 'notifications/cancelled', params: { requestId: 'r-1', reason: 'bored' } },
    });
    expect(res.status).toBe(202);
    await waitFor(() => heard.length === 1, 5000, 'cancel published');
    expect(heard[0]).toEqual({ connectionId: client.connectionId, target: 'r-1', reason: 'bored' });
    expect((await gw.engine.commandBacklog()).waiting).toBe(0);
    await sub.close();

    const bad = await send({
      connectionId: client.connectionId,
      message: { method: 'notifications/cancelled', params: { requestId: { nested: true } } },
    });
    expectError(bad, 400, 'bad_request');
  });

  it('accepts 100 commands posted at once (no 429 below the in-flight limit)', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        send({ connectionId: client.connectionId, message: { method: 'tools/list', id: i } }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(100).fill(202));
    expect(new Set(results.map((r) => r.body.requestId)).size).toBe(100);
  });

  it('answers 404 for an unknown connectionId', async () => {
    const res = await send({
      connectionId: 'no-such-connection',
      message: { method: 'tools/list' },
    });
    expect(expectError(res, 404, 'not_found').message).toMatch(/no-such-connection/);
  });

  it("answers 403 for another token's connection", async () => {
    const res = await send(
      { connectionId: client.connectionId, message: { method: 'tools/list' } },
      gw.token({ type: 'team', sub: 'someone-else', ttl: '1h' }),
    );
    expectError(res, 403, 'forbidden');
  });

  it('answers 404 once a connection has closed', async () => {
    const gone = await openSseClient(gw.url, gw.tokens.team);
    gone.close();
    await waitFor(
      async () => !(await gw.engine.getConnection(gone.connectionId)),
      5000,
      'unregistered',
    );
    const res = await send({ connectionId: gone.connectionId, message: { method: 'tools/list' } });
    expectError(res, 404);
  });

  it('answers 400 for malformed JSON', async () => {
    const res = await api(gw.url, '/mcp/sse/send', {
      token: gw.tokens.team,
      rawBody: '{"connectionId": ',
    });
    expect(expectError(res, 400, 'bad_request').message).toMatch(/Malformed JSON/);
  });

  it('answers 400 for a body that is not a JSON object', async () => {
    for (const rawBody of ['[1,2]', '"text"', 'null']) {
      const res = await api(gw.url, '/mcp/sse/send', { token: gw.tokens.team, rawBody });
      expectError(res, 400, 'bad_request');
    }
    const plain = await api(gw.url, '/mcp/sse/send', {
      token: gw.tokens.team,
      rawBody: 'connectionId=x',
      headers: { 'Content-Type': 'text/plain' },
    });
    expect(expectError(plain, 400).message).toMatch(/JSON object/);
  });

  it.each([
    ['a missing connectionId', { message: { method: 'tools/list' } }, /connectionId/],
    ['a missing message', { connectionId: 'c' }, /message/],
    ['a missing method', { connectionId: 'c', message: {} }, /message\.method/],
    ['a numeric connectionId', { connectionId: 5, message: { method: 'x' } }, /connectionId/],
    ['a string message', { connectionId: 'c', message: 'tools/list' }, /message/],
    ['a numeric method', { connectionId: 'c', message: { method: 1 } }, /message\.method/],
    [
      'array params',
      { connectionId: 'c', message: { method: 'x', params: [1] } },
      /message\.params/,
    ],
    ['an object id', { connectionId: 'c', message: { method: 'x', id: {} } }, /message\.id/],
  ])('answers 400 naming the field for %s', async (_what, json, field) => {
    const res = await send(json);
    expect(expectError(res, 400, 'bad_request').message).toMatch(field);
  });

  it('answers 413 for a body over MAX_BODY_BYTES', async () => {
    const res = await send({
      connectionId: client.connectionId,
      message: { method: 'tools/call', params: { blob: 'x'.repeat(4096) } },
    });
    expect(expectError(res, 413, 'payload_too_large').message).toMatch(/2048 bytes/);
  });
});

describe('rate limiting', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({ env: { RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW_MS: '60000' } });
  });
  afterAll(() => gw.close());

  it('answers 429 with Retry-After past the limit, per token', async () => {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 6; i++) {
      last = await api(gw.url, '/mcp/sse/stats', { token: gw.tokens.master });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expectError(last!, 429, 'rate_limited');
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another token has its own budget.
    const other = gw.token({ type: 'master', sub: 'master-2', ttl: '1h' });
    expect((await api(gw.url, '/mcp/sse/stats', { token: other })).status).toBe(200);
  });

  it('limits requests without a valid token by client IP', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await api(gw.url, '/mcp/sse/stats')).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
  });

  it('never limits the probes', async () => {
    for (let i = 0; i < 10; i++) expect((await api(gw.url, '/health')).status).toBe(200);
  });
});
