/**
 * Issue 9 item 1 at the gateway (memory engine, real HTTP and EventSource clients): a broadcast
 * over EVENT_MAX_BYTES is refused before anything is published; errors never echo unbounded
 * input; a closed connection's history goes with its resume window, unless it is resumed.
 */
import { ZERO_EVENT_ID } from '../../../shared/engine/eventId';
import { topics } from '../../../shared/protocol';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { openSseClient, sendCommand } from '../../helpers/sseClient';
import { sleep, waitFor } from '../../../devSupport/waitFor';
import { api, expectError } from './api';
import { openRawSse } from './rawSse';

const EVENT_MAX_BYTES = 4096;

describe('bounded events and echoes', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({ env: { EVENT_MAX_BYTES: String(EVENT_MAX_BYTES) } });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('refuses a broadcast over EVENT_MAX_BYTES with 413 naming size and limit; nothing is published', async () => {
    const team = await openSseClient(gw.url, gw.tokens.team, { extraEvents: ['probe'] });
    try {
      const before = await gw.engine.lastEventId(topics.tokenType('team'));
      const res = await api(gw.url, '/mcp/sse/broadcast', {
        token: gw.tokens.master,
        json: { message: { type: 'probe', blob: 'x'.repeat(EVENT_MAX_BYTES) } },
      });
      const error = expectError(res, 413, 'event_too_large');
      expect(error.message).toMatch(
        /^Event of \d+ bytes exceeds the 4096-byte limit \(EVENT_MAX_BYTES\)$/,
      );
      expect(await gw.engine.lastEventId(topics.tokenType('team'))).toBe(before);

      // A broadcast within the limit still goes out, and is the only probe the client got.
      const ok = await api(gw.url, '/mcp/sse/broadcast', {
        token: gw.tokens.master,
        json: { message: { type: 'probe', small: true } },
      });
      expect(ok.status).toBe(202);
      await team.next((e) => e.event === 'probe');
      expect(team.named('probe').map((e) => e.json.small)).toEqual([true]);
    } finally {
      team.close();
    }
  });

  it('never echoes a long method, id, path or field name whole', async () => {
    const client = await openSseClient(gw.url, gw.tokens.team);
    try {
      const huge = 'm'.repeat(900 * 1024);
      const method = await sendCommand(gw.url, gw.tokens.team, client.connectionId, {
        method: huge,
      });
      expect(method.status).toBe(400);
      expect(method.body.error?.message).toContain('message.method');
      expect(method.body.error!.message.length).toBeLessThan(400);

      const id = await sendCommand(gw.url, gw.tokens.team, client.connectionId, {
        method: 'ping',
        id: huge,
      });
      expect(id.status).toBe(400);
      expect(id.body.error!.message.length).toBeLessThan(400);

      const unknown = await sendCommand(gw.url, gw.tokens.team, 'c'.repeat(128), {
        method: 'ping',
      });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error!.message).toMatch(
        /^Unknown connectionId c{100}… \(128 characters\)$/,
      );

      const path = await api(gw.url, `/${'p'.repeat(10_000)}`);
      expect(expectError(path, 404).message).toMatch(/… \(10001 characters\)$/);
      expect(path.text.length).toBeLessThan(400);

      // Field names come from the client too: at most a few issues, each bounded.
      const params = Object.fromEntries(
        Array.from({ length: 50 }, (_, i) => [`${'k'.repeat(5000)}${i}`, 1]),
      );
      const fields = await api(gw.url, '/mcp/sse/broadcast', {
        token: gw.tokens.master,
        json: { message: { type: 'bad type!' }, filter: { tokenTypes: params } },
      });
      expect(expectError(fields, 400, 'bad_request').message.length).toBeLessThan(1000);
    } finally {
      client.close();
    }
  });
});

describe('a closed connection’s history and its resume window', () => {
  let gw: GatewayHarness;
  // Resume window: registry entry untouched for max(3 x 50, 400) ms, dropped by the next sweep.
  const WINDOW_MS = 400 + 50;
  beforeAll(async () => {
    gw = await startGateway({ env: { RESUME_GRACE_MS: '400', CLEANUP_INTERVAL_MS: '50' } });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('goes when the window ends, results published after the close included', async () => {
    const open = await openSseClient(gw.url, gw.tokens.team);
    const closing = await openSseClient(gw.url, gw.tokens.team);
    const openTopic = topics.connection(open.connectionId);
    const closedTopic = topics.connection(closing.connectionId);
    await gw.engine.publish(openTopic, 'mcp-response', '{"n":1}');
    await gw.engine.publish(closedTopic, 'mcp-response', '{"n":1}');
    await closing.next((e) => e.event === 'mcp-response');
    closing.close();
    await waitFor(() => !gw.gateway.hub.has(closing.connectionId), 5000, 'server saw the close');
    await sleep(50); // the release (cap) runs after the local removal
    // A result of a call still running lands after the close, asking for the long TTL.
    const late = await gw.engine.publish(closedTopic, 'mcp-response', '{"n":2}');
    expect(await gw.engine.lastEventId(closedTopic)).toBe(late);

    await sleep(WINDOW_MS + 200);
    expect(await gw.engine.lastEventId(closedTopic)).toBe(ZERO_EVENT_ID);
    expect(await gw.engine.lastEventId(openTopic)).not.toBe(ZERO_EVENT_ID);
    open.close();
  });

  it('gets its full TTL back when the connection is resumed', async () => {
    const first = await openSseClient(gw.url, gw.tokens.team);
    const topic = topics.connection(first.connectionId);
    const id = await gw.engine.publish(topic, 'mcp-response', '{"n":1}');
    const seen = await first.next((e) => e.event === 'mcp-response');
    first.close();
    await waitFor(() => !gw.gateway.hub.has(first.connectionId), 5000, 'server saw the close');
    await sleep(50);
    const resumed = await openRawSse(`${gw.url}/mcp/sse`, {
      Authorization: `Bearer ${gw.tokens.team}`,
      'Last-Event-ID': seen.id,
    });
    try {
      const status = await resumed.next((e) => e.event === 'connection-status');
      expect(JSON.parse(status.data)).toMatchObject({
        status: 'resumed',
        connectionId: first.connectionId,
      });
      await sleep(WINDOW_MS + 200);
      expect(await gw.engine.lastEventId(topic)).toBe(id);
    } finally {
      resumed.close();
    }
  });
});
