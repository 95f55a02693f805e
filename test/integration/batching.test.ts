/**
 * Issue 16: with SSE_BATCH_MS on, events that arrive within the window go out in one write, and
 * none is lost or reordered. A real gateway over real Redis, 1,000 broadcasts POSTed one after
 * another, read by the `eventsource` package and, beside it, by a raw HTTP reader counting the
 * chunks the socket delivered (far fewer than the events: the writes were batched).
 */
import http from 'node:http';
import { issueToken } from '../../shared/auth';
import { reapAll, spawnRole, type SpawnedProcess } from '../helpers/processes';
import { openSseClient, type SseClient } from '../helpers/sseClient';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'batching-test-secret-0123456789abcdef';
const EVENTS = 1000;
const master = issueToken(SECRET, { type: 'master', sub: 'batching-master', ttl: '1h' });
const team = issueToken(SECRET, { type: 'team', sub: 'batching-team', ttl: '1h' });

let redis: ProvidedRedis;
let gateway: SpawnedProcess;
let client: SseClient | undefined;
let raw: http.ClientRequest | undefined;

beforeAll(async () => {
  redis = await provideRedis();
  gateway = await spawnRole('gateway', {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix('batching'),
    JWT_SECRET: SECRET,
    POD_ID: 'batching-gateway',
    SSE_BATCH_MS: '20',
    // 1,000 POSTs from one token: the request rate limit is tested elsewhere.
    RATE_LIMIT_MAX: '100000',
    HISTORY_MAXLEN: '5000',
  });
}, 30_000);

afterAll(async () => {
  client?.close();
  raw?.destroy();
  await reapAll();
  await redis?.stop();
});

/** A raw GET of the stream: counts the `tick` events and the chunks they came in. */
function rawReader(): Promise<{ chunks: () => number; ticks: () => number }> {
  let chunks = 0;
  let text = '';
  return new Promise((resolve, reject) => {
    raw = http.get(
      `${gateway.url}/mcp/sse`,
      { headers: { Authorization: `Bearer ${team}` } },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text === '') resolve({ chunks: () => chunks, ticks: () => count(text) });
          text += chunk;
          if (text.includes('event: tick')) chunks++;
        });
      },
    );
    raw.on('error', reject);
  });
}
const count = (text: string) => text.split('event: tick\n').length - 1;

test(`SSE_BATCH_MS=20: ${EVENTS} broadcasts arrive once each, in order, in batched writes`, async () => {
  client = await openSseClient(gateway.url, team, { extraEvents: ['tick'] });
  const reader = await rawReader();
  const run = `batch-${Date.now()}`;
  for (let seq = 1; seq <= EVENTS; seq++) {
    // One after another: the gateway publishes them in this order.
    const res = await fetch(`${gateway.url}/mcp/sse/broadcast`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${master}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: { type: 'tick', run, seq } }),
    });
    expect(res.status).toBe(202);
  }
  const ticks = () => client!.named('tick').filter((e) => e.json.run === run);
  await waitFor(() => ticks().length >= EVENTS && reader.ticks() >= EVENTS, 30_000, 'every tick');

  const got = ticks();
  expect(got.map((e) => e.json.seq)).toEqual(Array.from({ length: EVENTS }, (_, i) => i + 1));
  const ids = new Set(got.map((e) => e.id));
  expect(ids.size).toBe(EVENTS); // every event its own resume id, batching or not
  expect(reader.ticks()).toBe(EVENTS);
  // Sent about a millisecond apart: unbatched, nearly every event is a chunk of its own.
  expect(reader.chunks()).toBeLessThan(EVENTS / 2);
}, 60_000);
