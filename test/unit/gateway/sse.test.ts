import { captureLogs } from '../../helpers/logs';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { openSseClient } from '../../helpers/sseClient';
import { waitFor } from '../../../devSupport/waitFor';
import { api, expectError } from './api';
import { openRawSse } from './rawSse';
import { topics } from '../../../shared/protocol';

const EVENT_ID = /^([0-9a-f-]{36})_(\d+-\d+)_(\d+-\d+)$/;

describe('GET /mcp/sse', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('answers with the SSE headers of the original design plus X-Accel-Buffering', async () => {
    const stream = await openRawSse(`${gw.url}/mcp/sse`, {
      Authorization: `Bearer ${gw.tokens.team}`,
    });
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers).toMatchObject({
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        // The body is delimited by the connection's close (no chunked framing).
        connection: 'close',
        'access-control-allow-methods': 'GET, OPTIONS',
        'x-accel-buffering': 'no',
      });
      expect(stream.headers['transfer-encoding']).toBeUndefined();
      // The default origin policy: a request without Origin needs no CORS header.
      expect(stream.headers['access-control-allow-origin']).toBeUndefined();
      const allowHeaders = String(stream.headers['access-control-allow-headers']);
      for (const h of ['Authorization', 'Cache-Control', 'Last-Event-ID'])
        expect(allowHeaders).toContain(h);
    } finally {
      stream.close();
    }
  });

  it('starts with a welcome mcp-notification carrying connectionId, framed id/retry/event/data', async () => {
    const stream = await openRawSse(`${gw.url}/mcp/sse`, {
      Authorization: `Bearer ${gw.tokens.team}`,
    });
    try {
      const first = await stream.next(() => true);
      const data = JSON.parse(first.data);
      expect(first.event).toBe('mcp-notification');
      expect(data).toEqual({
        type: 'mcp-notification',
        connectionId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        tokenType: 'team',
        message: 'SSE connection established',
        timestamp: expect.any(String),
      });
      expect(Number.isNaN(Date.parse(data.timestamp))).toBe(false);
      // retry: how long EventSource waits before reconnecting, under 1 s and spread per stream.
      const retry = /^id: [^\n]+\nretry: (\d+)\n/.exec(first.raw);
      expect(Number(retry?.[1])).toBeGreaterThanOrEqual(250);
      expect(Number(retry?.[1])).toBeLessThan(1000);
      expect(first.raw).toBe(
        `id: ${first.id}\nretry: ${retry?.[1]}\nevent: mcp-notification\ndata: ${first.data}\n\n`,
      );
      expect(first.id).toMatch(EVENT_ID);
      expect(first.id?.startsWith(`${data.connectionId}_0-0_`)).toBe(true);
    } finally {
      stream.close();
    }
  });

  it('writes a worker tool-progress event as the tool-result with metadata.progress', async () => {
    const stream = await openRawSse(`${gw.url}/mcp/sse`, {
      Authorization: `Bearer ${gw.tokens.team}`,
    });
    try {
      const welcome = JSON.parse((await stream.next(() => true)).data);
      const progress = JSON.stringify({
        type: 'tool-result',
        method: 'simulate_work',
        requestId: 'r1',
        metadata: { progress: { progress: 1, total: 2 } },
        timestamp: 't',
      });
      await gw.engine.publish(topics.connection(welcome.connectionId), 'tool-progress', progress);
      const seen = await stream.next((e) => e.data === progress);
      expect(seen.event).toBe('tool-result');
    } finally {
      stream.close();
    }
  });

  it('registers the connection cluster-wide while open, and unregisters it on close', async () => {
    const client = await openSseClient(gw.url, gw.tokens.readonly);
    expect(await gw.engine.getConnection(client.connectionId)).toEqual({
      connectionId: client.connectionId,
      sub: 'readonly-1',
      tokenType: 'readonly',
      podId: 'gateway-test',
      connectedAt: expect.any(Number),
      transport: 'seed',
      resumable: false,
    });
    expect(gw.gateway.hub.has(client.connectionId)).toBe(true);
    client.close();
    await waitFor(() => !gw.gateway.hub.has(client.connectionId), 5000, 'hub forgets the stream');
    await waitFor(
      async () => !(await gw.engine.getConnection(client.connectionId)),
      5000,
      'unregistered',
    );
  });

  it('answers 404 JSON for unknown routes, without echoing the query', async () => {
    const res = await api(gw.url, '/mcp/nope?token=secret-looking');
    expect(expectError(res, 404, 'not_found').message).toBe('No route for GET /mcp/nope');
  });

  it('serves /health, /ready and /metrics', async () => {
    expect(await api(gw.url, '/health')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await api(gw.url, '/ready')).toMatchObject({ status: 200, body: { status: 'ready' } });
    await api(gw.url, '/mcp/sse/stats', { token: gw.tokens.master });
    await api(gw.url, '/no/such/route');
    const metrics = await api(gw.url, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metrics.text).toContain('mcpgw_connections_open');
    expect(metrics.text).toMatch(
      /mcpgw_http_requests_total\{route="\/mcp\/sse\/stats",method="GET",status="200",role="gateway"\} 1/,
    );
    expect(metrics.text).toMatch(
      /mcpgw_http_requests_total\{route="unmatched",method="GET",status="404"/,
    );
  });
});

describe('CORS', () => {
  describe('with ALLOWED_ORIGINS=*', () => {
    let gw: GatewayHarness;
    beforeAll(async () => {
      gw = await startGateway({ env: { ALLOWED_ORIGINS: '*' } });
    });
    afterAll(() => gw.close());

    it('answers a preflight from any origin', async () => {
      const res = await api(gw.url, '/mcp/sse/send', {
        method: 'OPTIONS',
        headers: {
          Origin: 'https://anywhere.example',
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'authorization, content-type',
        },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-methods')).toContain('POST');
      expect(res.headers.get('access-control-allow-headers')).toBe(
        'Authorization, Content-Type, Cache-Control, Last-Event-ID, X-SSE-Events',
      );
    });
  });

  describe('with a list of origins', () => {
    let gw: GatewayHarness;
    beforeAll(async () => {
      gw = await startGateway({
        env: { ALLOWED_ORIGINS: 'https://app.example, https://admin.example' },
      });
    });
    afterAll(() => gw.close());

    const preflight = (origin: string) =>
      api(gw.url, '/mcp/sse', {
        method: 'OPTIONS',
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': 'GET',
          'Access-Control-Request-Headers': 'authorization, last-event-id',
        },
      });

    it('echoes a listed origin on preflight and requests', async () => {
      const res = await preflight('https://admin.example');
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('https://admin.example');
      expect(res.headers.get('vary')).toContain('Origin');
      expect(res.headers.get('access-control-allow-headers')).toContain('Last-Event-ID');

      const stream = await openRawSse(`${gw.url}/mcp/sse`, {
        Authorization: `Bearer ${gw.tokens.team}`,
        Origin: 'https://app.example',
      });
      stream.close();
      expect(stream.headers['access-control-allow-origin']).toBe('https://app.example');
    });

    it('refuses a preflight from a foreign origin (403 JSON, no CORS headers)', async () => {
      const res = await preflight('https://evil.example');
      expectError(res, 403, 'forbidden');
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    });

    it('refuses any request from a foreign origin (403 JSON, no CORS headers)', async () => {
      const res = await api(gw.url, '/health', { headers: { Origin: 'https://evil.example' } });
      expectError(res, 403, 'forbidden');
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    });
  });
});

describe('heartbeats', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({ env: { HEARTBEAT_INTERVAL_MS: '40' } });
  });
  afterAll(() => gw.close());

  it('writes heartbeat events with ids at HEARTBEAT_INTERVAL_MS', async () => {
    const client = await openSseClient(gw.url, gw.tokens.team);
    try {
      await waitFor(() => client.named('heartbeat').length >= 3, 5000, 'three heartbeats');
      for (const beat of client.named('heartbeat')) {
        expect(beat.json).toEqual({ type: 'heartbeat', timestamp: expect.any(String) });
      }
      // Every event carries an id, and a heartbeat's id is the stream's current position.
      const welcome = client.named('mcp-notification')[0];
      for (const e of client.events) expect(e.id).toMatch(EVENT_ID);
      expect(client.named('heartbeat')[0].id).toBe(welcome.id);
      const metrics = await api(gw.url, '/metrics');
      expect(metrics.text).toMatch(/mcpgw_heartbeats_total\{role="gateway"\} [1-9]/);
    } finally {
      client.close();
    }
  });
});

describe('cleanup sweep', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({ env: { CLEANUP_INTERVAL_MS: '50' } });
  });
  afterAll(() => gw.close());

  it('closes a stream whose token expired, with connection-status token-expired first', async () => {
    // exp is whole seconds: 2 s leave at least one to connect in.
    const token = gw.token({ type: 'team', sub: 'short-lived', ttl: 2 });
    const stream = await openRawSse(`${gw.url}/mcp/sse`, { Authorization: `Bearer ${token}` });
    const welcome = await stream.next((e) => e.event === 'mcp-notification');
    const { connectionId } = JSON.parse(welcome.data);
    const status = await stream.next((e) => e.event === 'connection-status', 5000);
    expect(JSON.parse(status.data)).toMatchObject({
      type: 'connection-status',
      status: 'token-expired',
      connectionId,
    });
    expect(status.id).toBe(welcome.id);
    await stream.ended;
    expect(gw.gateway.hub.has(connectionId)).toBe(false);
    await waitFor(async () => !(await gw.engine.getConnection(connectionId)), 5000, 'unregistered');
    const metrics = await api(gw.url, '/metrics');
    expect(metrics.text).toMatch(
      /mcpgw_stale_connections_removed_total\{reason="token-expired",role="gateway"\} 1/,
    );
  });

  it('keeps live connections registered and drops registry entries no pod touches', async () => {
    const client = await openSseClient(gw.url, gw.tokens.team);
    await gw.engine.registerConnection({
      connectionId: 'orphan-of-a-dead-pod',
      sub: 'x',
      tokenType: 'team',
      podId: 'dead-pod',
      connectedAt: Date.now(),
      transport: 'seed',
      resumable: false,
    });
    try {
      await waitFor(
        async () => !(await gw.engine.getConnection('orphan-of-a-dead-pod')),
        5000,
        'orphan swept',
      );
      expect(await gw.engine.getConnection(client.connectionId)).toBeDefined();
    } finally {
      client.close();
    }
  });
});

describe('connection limits and readiness', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({ env: { MAX_CONNECTIONS_PER_TOKEN: '2' } });
  });
  afterAll(() => gw.close());

  it('refuses a token more than MAX_CONNECTIONS_PER_TOKEN streams (429)', async () => {
    const a = await openSseClient(gw.url, gw.tokens.team);
    const b = await openSseClient(gw.url, gw.tokens.team);
    try {
      const res = await api(gw.url, '/mcp/sse', { token: gw.tokens.team });
      expectError(res, 429, 'too_many_connections');
      expect(res.headers.get('retry-after')).not.toBeNull();
      // Other tokens are not affected.
      const other = await openSseClient(gw.url, gw.tokens.readonly);
      other.close();
    } finally {
      a.close();
      b.close();
    }
  });

  it('turns /ready to 503 JSON and refuses new streams while draining', async () => {
    const client = await openSseClient(gw.url, gw.tokens.master);
    try {
      gw.gateway.drainState.start();
      expectError(await api(gw.url, '/ready'), 503, 'unavailable');
      expect((await api(gw.url, '/health')).status).toBe(200);
      const refused = await api(gw.url, '/mcp/sse', { token: gw.tokens.team });
      expectError(refused, 503, 'unavailable');
      expect(refused.headers.get('retry-after')).not.toBeNull();
    } finally {
      client.close();
    }
  });
});

describe('engine down', () => {
  it('answers 503 JSON on /ready and the API while the engine is not ready', async () => {
    const gw = await startGateway();
    try {
      await gw.engine.close();
      expectError(await api(gw.url, '/ready'), 503, 'unavailable');
      expect((await api(gw.url, '/health')).status).toBe(200);
      expectError(await api(gw.url, '/mcp/sse', { token: gw.tokens.team }), 503);
      const send = { connectionId: 'c', message: { method: 'tools/list' } };
      expectError(await api(gw.url, '/mcp/sse/send', { token: gw.tokens.team, json: send }), 503);
      const broadcast = { message: { hello: 1 } };
      expectError(
        await api(gw.url, '/mcp/sse/broadcast', { token: gw.tokens.master, json: broadcast }),
        503,
      );
      expectError(await api(gw.url, '/mcp/sse/stats', { token: gw.tokens.master }), 503);
    } finally {
      await gw.close();
    }
  });
});

describe('slow consumers', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({
      env: { SEND_QUEUE_MAX_BYTES: '65536', SEND_QUEUE_MAX_EVENTS: '50', HISTORY_MAXLEN: '10' },
    });
  });
  afterAll(() => gw.close());

  it('closes a stream that stops reading once its send queue overflows', async () => {
    const slow = await openRawSse(`${gw.url}/mcp/sse`, {
      Authorization: `Bearer ${gw.tokens.team}`,
    });
    const fast = await openSseClient(gw.url, gw.tokens.team, { extraEvents: ['bulk'] });
    try {
      const welcome = await slow.next((e) => e.event === 'mcp-notification');
      const { connectionId } = JSON.parse(welcome.data);
      slow.pause();
      const data = JSON.stringify({ blob: 'x'.repeat(4000) });
      let sent = 0;
      // Loopback socket buffers hold a few MB: publish until the gateway gives up on the client,
      // yielding now and then so the reading client keeps up.
      while (gw.gateway.hub.has(connectionId) && sent < 20_000) {
        await gw.engine.publish(topics.tokenType('team'), 'bulk', data);
        sent++;
        if (sent % 10 === 0) await new Promise((r) => setTimeout(r, 0));
      }
      expect(gw.gateway.hub.has(connectionId)).toBe(false);
      expect(sent).toBeLessThan(20_000);
      const metrics = await api(gw.url, '/metrics');
      expect(metrics.text).toMatch(/mcpgw_slow_consumer_disconnects_total\{role="gateway"\} 1/);
      // The client that reads is unaffected and got every event.
      await waitFor(() => fast.named('bulk').length === sent, 10_000, 'fast client caught up');
      expect(gw.gateway.hub.has(fast.connectionId)).toBe(true);
    } finally {
      slow.close();
      fast.close();
    }
  });
});

describe('stuck sockets', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({
      env: {
        CLEANUP_INTERVAL_MS: '100',
        SEND_QUEUE_MAX_BYTES: String(256 * 1024 * 1024),
        SEND_QUEUE_MAX_EVENTS: '1000000',
        HISTORY_MAXLEN: '10',
      },
    });
  });
  afterAll(() => gw.close());

  it('closes a stream whose send queue did not drain between two cleanup sweeps', async () => {
    const stuck = await openRawSse(`${gw.url}/mcp/sse`, {
      Authorization: `Bearer ${gw.tokens.team}`,
    });
    try {
      const welcome = await stuck.next((e) => e.event === 'mcp-notification');
      const { connectionId } = JSON.parse(welcome.data);
      stuck.pause();
      // More than loopback socket buffers hold, far less than the queue bound.
      const data = JSON.stringify({ blob: 'x'.repeat(16_000) });
      for (let i = 0; i < 3000 && gw.gateway.hub.has(connectionId); i++) {
        await gw.engine.publish(topics.tokenType('team'), 'bulk', data);
      }
      await waitFor(() => !gw.gateway.hub.has(connectionId), 5000, 'stuck stream closed');
      const metrics = await api(gw.url, '/metrics');
      expect(metrics.text).toMatch(
        /mcpgw_stale_connections_removed_total\{reason="stuck",role="gateway"\} 1/,
      );
      expect(metrics.text).toMatch(/mcpgw_slow_consumer_disconnects_total\{role="gateway"\} 0/);
    } finally {
      stuck.close();
    }
  });
});

describe('gateway close', () => {
  it('ends every stream and unregisters every connection', async () => {
    const gw = await startGateway();
    try {
      const streams = await Promise.all(
        (['master', 'team', 'readonly'] as const).map((t) =>
          openRawSse(`${gw.url}/mcp/sse`, { Authorization: `Bearer ${gw.tokens[t]}` }),
        ),
      );
      await Promise.all(streams.map((s) => s.next((e) => e.event === 'mcp-notification')));
      expect((await gw.engine.clusterStats()).totalConnections).toBe(3);
      await gw.gateway.close();
      await Promise.all(streams.map((s) => s.ended));
      expect((await gw.engine.clusterStats()).totalConnections).toBe(0);
      expect(gw.gateway.hub.size).toBe(0);
    } finally {
      await gw.close();
    }
  });
});

describe('logging', () => {
  it('logs connections added and removed with their fields, and never a token', async () => {
    const { logger, lines } = captureLogs();
    const gw = await startGateway({ logger });
    try {
      const stream = await openRawSse(`${gw.url}/mcp/sse?token=${gw.tokens.team}`);
      const welcome = await stream.next((e) => e.event === 'mcp-notification');
      const { connectionId } = JSON.parse(welcome.data);
      stream.close();
      await waitFor(
        () => lines.some((l) => l.includes('SSE Connection Removed')),
        5000,
        'removal logged',
      );
      await api(gw.url, `/mcp/sse/stats?token=${gw.tokens.team}`);
      await api(gw.url, `/nowhere?token=${gw.tokens.team}`);
      await api(gw.url, `/mcp/sse/send?token=${gw.tokens.team}`, { rawBody: '{bad json' });

      const records = lines.map((l) => JSON.parse(l));
      expect(records.find((r) => r.message === 'SSE Connection Added')).toMatchObject({
        connectionId,
        sub: 'team-1',
        tokenType: 'team',
        clientIP: expect.any(String),
        totalConnections: 1,
      });
      expect(records.find((r) => r.message === 'SSE Connection Removed')).toMatchObject({
        connectionId,
        sub: 'team-1',
        tokenType: 'team',
        clientIP: expect.any(String),
        totalConnections: 0,
        duration: expect.any(Number),
      });
      expect(records.some((r) => r.message === 'HTTP request')).toBe(true);
      const signature = gw.tokens.team.split('.')[2];
      for (const line of lines) expect(line).not.toContain(signature);
    } finally {
      await gw.close();
    }
  });

  it('logs the client IP from X-Forwarded-For only when TRUST_PROXY says so', async () => {
    const logged = async (env: Record<string, string>) => {
      const { logger, lines } = captureLogs({ level: 'info' });
      const gw = await startGateway({ logger, env });
      try {
        const stream = await openRawSse(`${gw.url}/mcp/sse`, {
          Authorization: `Bearer ${gw.tokens.team}`,
          'X-Forwarded-For': '203.0.113.9',
        });
        await stream.next((e) => e.event === 'mcp-notification');
        stream.close();
        const added = lines
          .map((l) => JSON.parse(l))
          .find((r) => r.message === 'SSE Connection Added');
        return added.clientIP as string;
      } finally {
        await gw.close();
      }
    };
    expect(await logged({ TRUST_PROXY: '1' })).toBe('203.0.113.9');
    expect(await logged({})).not.toBe('203.0.113.9');
  });
});
