import { compareEventIds } from '../../../shared/engine/eventId';
import { topics } from '../../../shared/protocol';
import type { TokenType } from '../../../shared/types';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { openSseClient, type SseClient } from '../../helpers/sseClient';
import { api, expectError } from './api';

const TYPES: TokenType[] = ['master', 'team', 'readonly'];

describe('POST /mcp/sse/broadcast', () => {
  let gw: GatewayHarness;
  let clients: Record<TokenType, SseClient>;
  beforeAll(async () => {
    gw = await startGateway();
    const opened = await Promise.all(
      TYPES.map((t) =>
        openSseClient(gw.url, gw.tokens[t], { extraEvents: ['maintenance', 'probe'] }),
      ),
    );
    clients = { master: opened[0], team: opened[1], readonly: opened[2] };
  });
  afterAll(async () => {
    for (const c of Object.values(clients)) c.close();
    await gw.close();
  });

  const broadcast = (json: unknown, token = gw.tokens.master) =>
    api(gw.url, '/mcp/sse/broadcast', { token, json });

  /** Broadcasts a marker to every type, so "nothing else arrived" can be awaited, not slept on. */
  async function syncAll(): Promise<void> {
    const marker = `sync-${Math.random()}`;
    expect((await broadcast({ message: { type: 'probe', marker } })).status).toBe(202);
    await Promise.all(TYPES.map((t) => clients[t].next((e) => e.json.marker === marker)));
  }

  it('reaches exactly the connections of the filtered token types', async () => {
    const res = await broadcast({
      message: {
        result: { message: 'Server maintenance in 5 minutes', level: 'warning' },
        tag: 'f1',
      },
      filter: { tokenTypes: ['team', 'readonly'] },
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      status: 'published',
      event: 'mcp-notification',
      tokenTypes: ['team', 'readonly'],
      eventIds: {
        team: expect.stringMatching(/^\d+-\d+$/),
        readonly: expect.stringMatching(/^\d+-\d+$/),
      },
    });
    await syncAll();
    const got = (t: TokenType) => clients[t].events.filter((e) => e.json.tag === 'f1');
    expect(got('team')).toHaveLength(1);
    expect(got('readonly')).toHaveLength(1);
    expect(got('master')).toHaveLength(0);
  });

  it('reaches every type without a filter', async () => {
    const res = await broadcast({ message: { tag: 'all' } });
    expect(res.body.tokenTypes).toEqual(['master', 'team', 'readonly']);
    await syncAll();
    for (const t of TYPES)
      expect(clients[t].events.filter((e) => e.json.tag === 'all')).toHaveLength(1);
  });

  it('uses message.type as the event name and the message itself as data', async () => {
    const timestamp = '2024-01-01T10:00:00Z';
    const message = { type: 'maintenance', result: { level: 'warning' }, timestamp };
    const res = await broadcast({ message, filter: { tokenTypes: ['team'] } });
    expect(res.body.event).toBe('maintenance');
    const e = await clients.team.next((x) => x.event === 'maintenance');
    expect(e.json).toEqual(message);
    expect(e.data).toBe(JSON.stringify(message));
  });

  it('adds a timestamp when the message has none', async () => {
    await broadcast({ message: { tag: 'stamped' }, filter: { tokenTypes: ['readonly'] } });
    const e = await clients.readonly.next((x) => x.json.tag === 'stamped');
    expect(e.event).toBe('mcp-notification');
    expect(e.json).toEqual({ tag: 'stamped', timestamp: expect.any(String) });
    expect(Number.isNaN(Date.parse(e.json.timestamp as string))).toBe(false);
  });

  it("advances the type part of each stream's id and keeps the connection part", async () => {
    const res = await broadcast({ message: { tag: 'ids' }, filter: { tokenTypes: ['master'] } });
    const e = await clients.master.next((x) => x.json.tag === 'ids');
    const [connectionId, connPart, typePart] = e.id.split('_');
    expect(connectionId).toBe(clients.master.connectionId);
    expect(connPart).toBe('0-0');
    expect(typePart).toBe(res.body.eventIds.master);
    // Ids never go backwards within a stream.
    const typeParts = clients.master.events.map((x) => x.id.split('_')[2]);
    for (let i = 1; i < typeParts.length; i++) {
      expect(compareEventIds(typeParts[i], typeParts[i - 1])).toBeGreaterThanOrEqual(0);
    }
  });

  it('does not replay broadcasts published before a connection opened', async () => {
    const before = await broadcast({
      message: { tag: 'before' },
      filter: { tokenTypes: ['team'] },
    });
    const late = await openSseClient(gw.url, gw.tokens.team);
    try {
      const welcome = late.named('mcp-notification')[0];
      expect(welcome.id).toBe(`${late.connectionId}_0-0_${before.body.eventIds.team}`);
      await broadcast({ message: { tag: 'after' }, filter: { tokenTypes: ['team'] } });
      await late.next((x) => x.json.tag === 'after');
      expect(late.events.some((x) => x.json.tag === 'before')).toBe(false);
    } finally {
      late.close();
    }
  });

  it('drops a type-topic event at or before the stream position (no duplicates)', async () => {
    // Re-delivering an id the stream already passed (as a resubscribe after a Redis failover may)
    // must not reach the client twice.
    const res = await broadcast({ message: { tag: 'once' }, filter: { tokenTypes: ['readonly'] } });
    await clients.readonly.next((x) => x.json.tag === 'once');
    const hub = gw.gateway.hub as unknown as { onBroadcast(ev: unknown): void };
    hub.onBroadcast({
      topic: topics.tokenType('readonly'),
      id: res.body.eventIds.readonly,
      event: 'mcp-notification',
      data: JSON.stringify({ tag: 'once' }),
    });
    await syncAll();
    expect(clients.readonly.events.filter((x) => x.json.tag === 'once')).toHaveLength(1);
  });

  it.each([
    ['no message', {}, /message/],
    ['a string message', { message: 'hello' }, /message/],
    ['an array message', { message: [1] }, /message/],
    ['an unsafe event name', { message: { type: 'bad name\nevent: x' } }, /message\.type/],
    ['a too long event name', { message: { type: 'x'.repeat(65) } }, /message\.type/],
    ['a numeric event name', { message: { type: 5 } }, /message\.type/],
    [
      'an unknown token type',
      { message: {}, filter: { tokenTypes: ['admin'] } },
      /filter\.tokenTypes\.0/,
    ],
    ['an empty token type list', { message: {}, filter: { tokenTypes: [] } }, /filter\.tokenTypes/],
    ['a non-array filter', { message: {}, filter: { tokenTypes: 'team' } }, /filter\.tokenTypes/],
  ])('answers 400 for %s', async (_what, json, field) => {
    const res = await broadcast(json);
    expect(expectError(res, 400, 'bad_request').message).toMatch(field);
  });

  it('answers 400 for malformed JSON', async () => {
    const res = await api(gw.url, '/mcp/sse/broadcast', {
      token: gw.tokens.master,
      rawBody: '{"message":',
    });
    expectError(res, 400, 'bad_request');
  });

  it('is refused to team and readonly tokens (403) and delivers nothing', async () => {
    for (const t of ['team', 'readonly'] as const) {
      expectError(await broadcast({ message: { tag: 'forbidden' } }, gw.tokens[t]), 403);
    }
    await syncAll();
    for (const t of TYPES)
      expect(clients[t].events.some((e) => e.json.tag === 'forbidden')).toBe(false);
  });
});

describe('GET /mcp/sse/stats', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it('counts the connections of the cluster by type, with the oldest and newest', async () => {
    const empty = await api(gw.url, '/mcp/sse/stats', { token: gw.tokens.master });
    expect(empty.body).toEqual({
      totalConnections: 0,
      connectionsByType: { master: 0, team: 0, readonly: 0 },
      connectionsByTransport: { seed: 0, 'streamable-http': 0, 'legacy-sse': 0 },
      resumableConnections: 0,
      oldestConnection: null,
      newestConnection: null,
    });

    const opened: SseClient[] = [];
    for (const t of ['team', 'team', 'readonly'] as const)
      opened.push(await openSseClient(gw.url, gw.tokens[t]));
    try {
      const res = await api(gw.url, '/mcp/sse/stats', { token: gw.tokens.master });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        totalConnections: 3,
        connectionsByType: { master: 0, team: 2, readonly: 1 },
        connectionsByTransport: { seed: 3, 'streamable-http': 0, 'legacy-sse': 0 },
        resumableConnections: 0,
        oldestConnection: expect.any(String),
        newestConnection: expect.any(String),
      });
      expect(Date.parse(res.body.oldestConnection)).toBeLessThanOrEqual(
        Date.parse(res.body.newestConnection),
      );
      expect(gw.gateway.hub.localStats()).toEqual({
        totalConnections: 3,
        connectionsByType: { master: 0, team: 2, readonly: 1 },
      });
    } finally {
      for (const c of opened) c.close();
    }
  });
});
