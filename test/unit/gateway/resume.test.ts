/**
 * Resume with Last-Event-ID on the same pod and on another pod (two gateways over one memory
 * engine), the resume window, history-lost, bad inputs, graceful drain and slow consumers.
 */
import { MemoryEngine } from '../../../shared/engine/memory';
import { topics } from '../../../shared/protocol';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { waitFor } from '../../../devSupport/waitFor';
import { api, expectError } from './api';
import { openRawSse, type RawSseStream, type WireEvent } from './rawSse';

const ENV = { RESUME_GRACE_MS: '5000', CLEANUP_INTERVAL_MS: '100' };

function seqs(events: WireEvent[], kind: string): number[] {
  return events
    .filter((e) => e.event === kind)
    .map((e) => (JSON.parse(e.data) as { seq: number }).seq);
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function open(gw: GatewayHarness, headers: Record<string, string> = {}, query = '') {
  return openRawSse(`${gw.url}/mcp/sse${query}`, {
    Authorization: `Bearer ${gw.tokens.team}`,
    ...headers,
  });
}

async function welcomeOf(stream: RawSseStream): Promise<string> {
  const welcome = await stream.next((e) => e.event === 'mcp-notification');
  return (JSON.parse(welcome.data) as { connectionId: string }).connectionId;
}

describe('resume with Last-Event-ID', () => {
  let engine: MemoryEngine;
  let a: GatewayHarness;
  let b: GatewayHarness;
  const streams: RawSseStream[] = [];
  const publishResult = (connectionId: string, seq: number) =>
    engine.publish(topics.connection(connectionId), 'tool-result', JSON.stringify({ seq }));
  const publishBroadcast = (seq: number) =>
    engine.publish(topics.tokenType('team'), 'news', JSON.stringify({ seq }));

  beforeAll(async () => {
    engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
    await engine.start();
    a = await startGateway({ engine, env: { ...ENV, POD_ID: 'pod-a' } });
    b = await startGateway({ engine, env: { ...ENV, POD_ID: 'pod-b' } });
  });
  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await engine.close();
  });

  async function track(p: Promise<RawSseStream>): Promise<RawSseStream> {
    const s = await p;
    streams.push(s);
    return s;
  }

  it.each([
    ['the same pod', () => a],
    ['another pod', () => b],
  ])('resumes on %s: every missed event once, in order, then live', async (_, target) => {
    const first = await track(open(a));
    const connectionId = await welcomeOf(first);
    for (let i = 1; i <= 3; i++) await publishResult(connectionId, i);
    for (let i = 1; i <= 3; i++) await publishBroadcast(i);
    await first.next((e) => e.event === 'news' && e.data.includes('"seq":3'));
    await first.next((e) => e.event === 'tool-result' && e.data.includes('"seq":3'));
    const lastId = first.events[first.events.length - 1].id!;
    first.close();
    await waitFor(() => !a.gateway.hub.has(connectionId), 5000, 'A noticed the close');

    // Missed while away: a command sent meanwhile is still accepted (resume window).
    const sent = await api(a.url, '/mcp/sse/send', {
      token: a.tokens.team,
      json: { connectionId, message: { method: 'ping' } },
    });
    expect(sent.status).toBe(202);
    for (let i = 4; i <= 6; i++) await publishResult(connectionId, i);
    for (let i = 4; i <= 6; i++) await publishBroadcast(i);

    const second = await track(open(target(), { 'Last-Event-ID': lastId }));
    const status = await second.next((e) => e.event === 'connection-status');
    expect(JSON.parse(status.data)).toMatchObject({ status: 'resumed', connectionId, missed: 6 });
    expect(status.id).toBe(lastId);
    await second.next((e) => e.event === 'news' && e.data.includes('"seq":6'));
    for (let i = 7; i <= 8; i++) await publishResult(connectionId, i);
    for (let i = 7; i <= 8; i++) await publishBroadcast(i);
    await second.next((e) => e.event === 'news' && e.data.includes('"seq":8'));
    await second.next((e) => e.event === 'tool-result' && e.data.includes('"seq":8'));

    const all = [...first.events, ...second.events];
    expect(seqs(all, 'tool-result')).toEqual(range(1, 8));
    expect(seqs(all, 'news')).toEqual(range(1, 8));
    expect(second.events.some((e) => e.event === 'mcp-notification')).toBe(false);
    // Every id names the same connection and never goes back.
    const ids = second.events.map((e) => e.id!);
    expect(ids.every((id) => id.startsWith(`${connectionId}_`))).toBe(true);
    expect(target().gateway.hub.has(connectionId)).toBe(true);
    expect((await engine.getConnection(connectionId))?.podId).toBe(target().config.podId);
    const metrics = await api(target().url, '/metrics');
    expect(metrics.text).toMatch(/mcpgw_resumes_total\{outcome="resumed",role="gateway"\} [1-9]/);
  });

  it('accepts the id as ?lastEventId= and replaces a socket the pod still holds', async () => {
    const first = await track(open(a));
    const connectionId = await welcomeOf(first);
    await publishResult(connectionId, 1);
    const got = await first.next((e) => e.event === 'tool-result');
    await publishResult(connectionId, 2);
    const second = await track(open(a, {}, `?lastEventId=${encodeURIComponent(got.id!)}`));
    await second.next((e) => e.event === 'tool-result' && e.data.includes('"seq":2'));
    await first.ended; // the old socket was closed
    expect(seqs(second.events, 'tool-result')).toEqual([2]);
    expect(a.gateway.hub.has(connectionId)).toBe(true);
  });

  it('answers 400 JSON for an unparseable Last-Event-ID', async () => {
    for (const bad of ['garbage', 'x_1-0', 'abc_1-0_zz', `${'a'.repeat(300)}_0-0_0-0`]) {
      const res = await api(a.url, '/mcp/sse', {
        token: a.tokens.team,
        headers: { 'Last-Event-ID': bad },
      });
      expectError(res, 400, 'bad_request');
    }
  });

  it("answers 403 for another token's connection", async () => {
    const first = await track(open(a));
    await welcomeOf(first);
    const res = await api(b.url, '/mcp/sse', {
      token: b.token({ type: 'team', sub: 'someone-else', ttl: '1h' }),
      headers: { 'Last-Event-ID': first.events[0].id! },
    });
    expectError(res, 403, 'forbidden');
  });

  it('opens a new connection, announced by history-lost, when the connection is unknown', async () => {
    const stream = await track(
      open(b, { 'Last-Event-ID': '00000000-0000-0000-0000-000000000000_5-0_5-0' }),
    );
    const lost = await stream.next((e) => e.event === 'connection-status');
    expect(JSON.parse(lost.data)).toMatchObject({ status: 'history-lost' });
    const connectionId = await welcomeOf(stream);
    expect(connectionId).not.toBe('00000000-0000-0000-0000-000000000000');
    expect(stream.events.map((e) => e.event)).toEqual(['connection-status', 'mcp-notification']);
  });
});

describe('history older than retention', () => {
  it('says history-lost first, then replays what is kept', async () => {
    const gw = await startGateway({ env: { ...ENV, HISTORY_MAXLEN: '5' } });
    try {
      const first = await open(gw);
      const connectionId = await welcomeOf(first);
      const lastId = first.events[0].id!;
      first.close();
      await waitFor(() => !gw.gateway.hub.has(connectionId), 5000, 'closed');
      for (let i = 1; i <= 12; i++)
        await gw.engine.publish(topics.connection(connectionId), 'tool-result', `{"seq":${i}}`);
      const second = await open(gw, { 'Last-Event-ID': lastId });
      try {
        await second.next((e) => e.event === 'tool-result' && e.data.includes('"seq":12'));
        const statuses = second.events
          .filter((e) => e.event === 'connection-status')
          .map((e) => (JSON.parse(e.data) as { status: string }).status);
        expect(statuses).toEqual(['history-lost', 'resumed']);
        expect(second.events[0].event).toBe('connection-status');
        expect(seqs(second.events, 'tool-result')).toEqual(range(8, 12));
        const metrics = await api(gw.url, '/metrics');
        expect(metrics.text).toMatch(
          /mcpgw_resumes_total\{outcome="history_lost",role="gateway"\} 1/,
        );
      } finally {
        second.close();
      }
    } finally {
      await gw.close();
    }
  });
});

describe('resume window', () => {
  it('keeps a closed connection registered for RESUME_GRACE_MS, then sweeps it', async () => {
    const gw = await startGateway({ env: { RESUME_GRACE_MS: '400', CLEANUP_INTERVAL_MS: '50' } });
    try {
      const stream = await open(gw);
      const connectionId = await welcomeOf(stream);
      stream.close();
      await waitFor(() => !gw.gateway.hub.has(connectionId), 5000, 'closed');
      expect(await gw.engine.getConnection(connectionId)).toBeDefined();
      await waitFor(async () => !(await gw.engine.getConnection(connectionId)), 5000, 'swept');
    } finally {
      await gw.close();
    }
  });
});

describe('graceful drain', () => {
  it('refuses new streams, says draining with a retry hint, and closes every stream', async () => {
    const gw = await startGateway({ env: { ...ENV, DRAIN_WINDOW_MS: '300' } });
    try {
      const streams = await Promise.all([open(gw), open(gw), open(gw)]);
      const ids = await Promise.all(streams.map(welcomeOf));
      const draining = gw.gateway.hub.drain();
      expect((await api(gw.url, '/ready')).status).toBe(503);
      const refused = await api(gw.url, '/mcp/sse', { token: gw.tokens.team });
      expectError(refused, 503, 'unavailable');
      expect(refused.headers.get('retry-after')).toBe('1');
      await draining;
      await Promise.all(streams.map((s) => s.ended));
      for (const s of streams) {
        const status = s.events.find((e) => e.event === 'connection-status')!;
        expect(JSON.parse(status.data)).toMatchObject({ status: 'draining' });
        expect(status.raw).toMatch(/^id: .*\nretry: \d+\nevent: connection-status\n/);
      }
      expect(gw.gateway.hub.size).toBe(0);
      // Still resumable elsewhere: the registry entries stay for the resume window.
      for (const id of ids) expect(await gw.engine.getConnection(id)).toBeDefined();
    } finally {
      await gw.close();
    }
  });
});

describe('slow consumers', () => {
  it('closes a client that stops reading, which then resumes with every event', async () => {
    const gw = await startGateway({
      env: {
        ...ENV,
        SEND_QUEUE_MAX_BYTES: '16384',
        SEND_QUEUE_MAX_EVENTS: '100',
        HISTORY_MAXLEN: '20000',
        // Up to 10,000 events of 2 KB: the history must keep them all for the full replay.
        HISTORY_MAX_BYTES: String(64 * 1024 * 1024),
      },
    });
    try {
      const slow = await open(gw);
      const connectionId = await welcomeOf(slow);
      slow.pause();
      const blob = 'x'.repeat(2000);
      let total = 0;
      // Loopback socket buffers hold a few MB: publish until the gateway gives up on the client.
      while (gw.gateway.hub.has(connectionId) && total < 10_000) {
        total++;
        await gw.engine.publish(topics.tokenType('team'), 'news', `{"seq":${total},"p":"${blob}"}`);
        if (total % 10 === 0) await new Promise((r) => setTimeout(r, 0));
      }
      // A few more after the close, missed entirely.
      for (let i = 0; i < 5; i++) {
        total++;
        await gw.engine.publish(topics.tokenType('team'), 'news', `{"seq":${total},"p":"${blob}"}`);
      }
      await waitFor(() => !gw.gateway.hub.has(connectionId), 5000, 'slow consumer closed');
      const metrics = await api(gw.url, '/metrics');
      expect(metrics.text).toMatch(/mcpgw_slow_consumer_disconnects_total\{role="gateway"\} 1/);
      // What the client did get before the close (it reads again now), then resume from there.
      slow.close();
      await slow.ended;
      const got = seqs(slow.events, 'news');
      const lastId = [...slow.events].reverse().find((e) => e.id)!.id!;
      const resumed = await open(gw, { 'Last-Event-ID': lastId });
      try {
        await resumed.next(
          (e) => e.event === 'news' && e.data.startsWith(`{"seq":${total},`),
          10_000,
        );
        expect([...got, ...seqs(resumed.events, 'news')]).toEqual(range(1, total));
      } finally {
        resumed.close();
      }
    } finally {
      await gw.close();
    }
  });
});
