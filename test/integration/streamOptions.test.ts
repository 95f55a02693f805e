/**
 * Issue 16 (gateway side): SSE_COMPRESSION=gzip and per-stream event filters, with real clients
 * (headless Chromium's EventSource, the `eventsource` package, `curl --compressed`) against two
 * gateway processes and a worker on one real Redis. Broadcasts of chosen types are the events;
 * the worker answers the /mcp requests whose replies are compressed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { existsSync } from 'node:fs';
import { EventSource } from 'eventsource';
import { chromium, type Browser } from 'playwright-core';
import { issueToken } from '../../shared/auth';
import type { TokenType } from '../../shared/types';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { spawnRole, type SpawnedProcess } from '../helpers/processes';
import { uniquePrefix } from '../../devSupport/redis';
import { waitFor } from '../../devSupport/waitFor';
import { initializeSession } from '../helpers/mcpHttp';
import { openRawSse, type RawSseStream, type WireEvent } from '../unit/gateway/rawSse';

const CHROMIUM = '/usr/bin/chromium';
const SECRET = 'stream-options-secret-0123456789abcdef';
const token = (type: TokenType) => issueToken(SECRET, { type, sub: `${type}-so`, ttl: '1h' });
const tokens = { master: token('master'), team: token('team') };

let cluster: TestCluster;
let gatewayA: SpawnedProcess;
let gatewayB: SpawnedProcess;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  cluster = await startCluster('streamopts', {
    gateways: 2,
    workers: 1,
    jwtSecret: SECRET,
    env: { SSE_COMPRESSION: 'gzip', HEARTBEAT_INTERVAL_MS: '500', RESUME_GRACE_MS: '30000' },
  });
  [gatewayA, gatewayB] = cluster.gateways;
}, 60_000);

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

afterAll(async () => {
  await cluster?.stop();
});

/** Broadcasts an event named `type` (data carries `seq` and `run`) to every token type. */
async function broadcast(type: string, run: string, seq: number, via = gatewayA): Promise<void> {
  const res = await fetch(`${via.url}/mcp/sse/broadcast`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${tokens.master}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ message: { type, run, seq } }),
  });
  expect(res.status).toBe(202);
}

/** The events of `run` a raw stream got, as `<event>:<seq>`, in order. */
const ofRun = (events: WireEvent[], run: string) =>
  events
    .filter((e) => e.event !== undefined && e.data.includes(`"run":"${run}"`))
    .map((e) => `${e.event}:${(JSON.parse(e.data) as { seq: number }).seq}`);

async function raw(gateway: SpawnedProcess, query: string, headers: Record<string, string> = {}) {
  const stream: RawSseStream = await openRawSse(`${gateway.url}/mcp/sse${query}`, {
    Authorization: `Bearer ${tokens.team}`,
    ...headers,
  });
  cleanups.push(() => stream.close());
  return stream;
}

describe('event filters', () => {
  it('answers 400 naming the known events for an unknown name, and nothing opens', async () => {
    for (const [query, headers] of [
      ['?events=tool-result,tool-reslt', {}],
      ['', { 'X-SSE-Events': 'mcp-error, bogus' }],
      ['?events=broadcast:bad%20name', {}],
    ] as const) {
      const res = await fetch(`${gatewayA.url}/mcp/sse${query}`, {
        headers: { Authorization: `Bearer ${tokens.team}`, ...headers },
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error?: { message?: string }; message?: string };
      const message = JSON.stringify(body);
      expect(message).toContain('tool-result, mcp-response, mcp-error, mcp-notification');
      expect(message).toContain('broadcast:<type>');
    }
  });

  it('writes only matching events, before and after a resume on another pod', async () => {
    const run = `f${Date.now()}`;
    const filter = '?events=tool-result,broadcast:tick';
    const first = await raw(gatewayA, filter);
    expect(first.status).toBe(200);
    const welcome = await first.next((e) => e.event === 'mcp-notification');
    expect(JSON.parse(welcome.data)).toMatchObject({ message: 'SSE connection established' });

    const live = ['tick', 'other', 'mcp-notification', 'tool-result', 'mcp-error', 'tick'];
    for (const [i, type] of live.entries()) await broadcast(type, run, i + 1);
    await first.next((e) => e.event === 'tick' && e.data.includes('"seq":6'));
    expect(ofRun(first.events, run)).toEqual(['tick:1', 'tool-result:4', 'tick:6']);
    // A heartbeat left out by the filter still keeps the stream alive, as a comment.
    await waitFor(() => first.events.some((e) => e.raw.startsWith(': heartbeat')), 5000, 'beat');
    expect(first.events.some((e) => e.event === 'heartbeat')).toBe(false);
    const lastId = first.events.filter((e) => e.id !== undefined).at(-1)!.id!;
    first.close();
    await first.ended;

    const missed = ['other', 'tick', 'mcp-error', 'tool-result', 'mcp-notification', 'tick'];
    for (const [i, type] of missed.entries()) await broadcast(type, run, 10 + i);
    const resumed = await raw(gatewayB, filter, { 'Last-Event-ID': lastId });
    expect(resumed.status).toBe(200);
    const status = await resumed.next((e) => e.event === 'connection-status');
    expect(JSON.parse(status.data)).toMatchObject({ status: 'resumed', missed: 3 });
    await resumed.next((e) => e.event === 'tick' && e.data.includes('"seq":15'));
    for (const [i, type] of ['mcp-error', 'tick'].entries()) await broadcast(type, run, 20 + i);
    await resumed.next((e) => e.event === 'tick' && e.data.includes('"seq":21'));
    expect(ofRun(resumed.events, run)).toEqual(['tick:11', 'tool-result:13', 'tick:15', 'tick:21']);
    expect(resumed.events.some((e) => e.data.includes('history-lost'))).toBe(false);
    expect(resumed.events.some((e) => e.event === 'heartbeat' || e.event === 'mcp-error')).toBe(
      false,
    );
    // Ids stay resume points: every written event's id names the resumed connection.
    const connectionId = (JSON.parse(welcome.data) as { connectionId: string }).connectionId;
    for (const e of resumed.events.filter((x) => x.id)) expect(e.id!.startsWith(connectionId));
  });

  it('tells history-lost on a filtered resume when only filtered-out events were dropped', async () => {
    // Two more gateways with a short history, on their own prefix.
    const env = {
      ...cluster.env,
      REDIS_PREFIX: uniquePrefix('streamopts-short'),
      HISTORY_MAXLEN: '5',
    };
    const [c, d] = await Promise.all([
      spawnRole('gateway', { ...env, POD_ID: 'gateway-c' }),
      spawnRole('gateway', { ...env, POD_ID: 'gateway-d' }),
    ]);
    const run = `l${Date.now()}`;
    const first = await raw(c, '?events=broadcast:tick');
    await first.next((e) => e.event === 'mcp-notification');
    const lastId = first.events.filter((e) => e.id !== undefined).at(-1)!.id!;
    first.close();
    await first.ended;
    for (let seq = 1; seq <= 30; seq++) await broadcast('other', run, seq, c);
    await broadcast('tick', run, 31, c);
    const resumed = await raw(d, '?events=broadcast:tick', { 'Last-Event-ID': lastId });
    await resumed.next((e) => e.event === 'tick' && e.data.includes('"seq":31'));
    const statuses = resumed.events
      .filter((e) => e.event === 'connection-status')
      .map((e) => (JSON.parse(e.data) as { status: string }).status);
    expect(statuses).toEqual(['history-lost', 'resumed']);
    expect(ofRun(resumed.events, run)).toEqual(['tick:31']);
  });

  it('takes the filter from the X-SSE-Events header (eventsource package)', async () => {
    const run = `h${Date.now()}`;
    const got: string[] = [];
    const source = new EventSource(`${gatewayA.url}/mcp/sse`, {
      fetch: (input, init) =>
        fetch(input, {
          ...init,
          headers: {
            ...init?.headers,
            Authorization: `Bearer ${tokens.team}`,
            'X-SSE-Events': 'mcp-error',
          },
        }),
    });
    cleanups.push(() => source.close());
    for (const name of ['mcp-error', 'tick', 'tool-result', 'heartbeat']) {
      source.addEventListener(name, (m: MessageEvent) => {
        const data = m.data as string;
        if (data.includes(run)) got.push(`${name}:${(JSON.parse(data) as { seq: number }).seq}`);
        else if (name === 'heartbeat') got.push('heartbeat');
      });
    }
    const welcomed = new Promise<void>((resolve) =>
      source.addEventListener('mcp-notification', () => resolve()),
    );
    await welcomed;
    for (const [i, type] of ['tick', 'mcp-error', 'tool-result', 'mcp-error'].entries())
      await broadcast(type, run, i + 1);
    await waitFor(() => got.includes('mcp-error:4'), 5000, 'mcp-error 4');
    expect(got).toEqual(['mcp-error:2', 'mcp-error:4']);
  });
});

describe('SSE_COMPRESSION=gzip', () => {
  it('leaves a stream plain for a client that does not accept gzip', async () => {
    const stream = await raw(gatewayA, '', { 'Accept-Encoding': 'identity' });
    expect(stream.headers['content-encoding']).toBeUndefined();
    await stream.next((e) => e.event === 'mcp-notification');
  });

  it('gzips for the eventsource package, each event decoded before the next is sent', async () => {
    const run = `e${Date.now()}`;
    let encoding: string | null = null;
    const got: number[] = [];
    const source = new EventSource(`${gatewayB.url}/mcp/sse`, {
      fetch: async (input, init) => {
        const res = await fetch(input, {
          ...init,
          headers: { ...init?.headers, Authorization: `Bearer ${tokens.team}` },
        });
        encoding = res.headers.get('content-encoding');
        return res;
      },
    });
    cleanups.push(() => source.close());
    source.addEventListener('tick', (m: MessageEvent) => {
      const data = m.data as string;
      if (data.includes(run)) got.push((JSON.parse(data) as { seq: number }).seq);
    });
    await new Promise<void>((resolve) =>
      source.addEventListener('mcp-notification', () => resolve()),
    );
    expect(encoding).toBe('gzip');
    for (let seq = 1; seq <= 3; seq++) {
      await broadcast('tick', run, seq);
      await waitFor(() => got.includes(seq), 5000, `tick ${seq} before the next is sent`);
    }
    // A 50 KB event arrives whole, too.
    await broadcast('tick', `${run}${'x'.repeat(50_000)}`, 4);
    await waitFor(() => got.includes(4), 5000, 'the large tick');
    expect(got).toEqual([1, 2, 3, 4]);
  });

  it('gzips for curl --compressed, each event printed before the next is sent', async () => {
    const run = `c${Date.now()}`;
    const curl: ChildProcess = spawn('curl', [
      '-sS',
      '-N',
      '--compressed',
      '-D',
      '-',
      '-H',
      `Authorization: Bearer ${tokens.team}`,
      `${gatewayA.url}/mcp/sse`,
    ]);
    cleanups.push(() => curl.kill('SIGKILL'));
    let out = '';
    curl.stdout!.setEncoding('utf8');
    curl.stdout!.on('data', (chunk: string) => (out += chunk));
    await waitFor(() => out.includes('SSE connection established'), 5000, 'welcome via curl');
    expect(out.toLowerCase()).toContain('content-encoding: gzip');
    for (let seq = 1; seq <= 3; seq++) {
      await broadcast('tick', run, seq);
      await waitFor(
        () => out.includes(`"run":"${run}","seq":${seq}`),
        5000,
        `curl printed tick ${seq} before the next is sent`,
      );
    }
  });

  it('gzips for Chromium EventSource, which gets events one by one and the ?events= filter', async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does it)`);
    }
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`${gatewayA.url}/demo`);
      const run = `b${Date.now()}`;
      const sseResponse = page.waitForResponse((r) => r.url().includes('/mcp/sse?'));
      await page.evaluate(
        ({ url, tok }) => {
          const w = globalThis as unknown as { got: string[] };
          w.got = [];
          // The page's own EventSource (this file's import is the Node package).
          const BrowserEventSource = (globalThis as unknown as { EventSource: typeof EventSource })
            .EventSource;
          const source = new BrowserEventSource(
            `${url}/mcp/sse?token=${encodeURIComponent(tok)}&events=broadcast:tick`,
          );
          for (const name of ['tick', 'other', 'mcp-notification'])
            source.addEventListener(name, (m) => w.got.push(`${name}:${(m as MessageEvent).data}`));
        },
        { url: gatewayA.url, tok: tokens.team },
      );
      const response = await sseResponse;
      expect((await response.allHeaders())['content-encoding']).toBe('gzip');
      const got = () => page.evaluate(() => (globalThis as unknown as { got: string[] }).got);
      await waitFor(
        async () => (await got()).some((g) => g.includes('established')),
        5000,
        'welcome',
      );
      for (let seq = 1; seq <= 3; seq++) {
        await broadcast('other', run, seq);
        await broadcast('tick', run, seq);
        await waitFor(
          async () => (await got()).some((g) => g.includes(`"seq":${seq}`)),
          5000,
          `tick ${seq} in Chromium before the next is sent`,
        );
      }
      const mine = (await got()).filter((g) => g.includes(run)).map((g) => g.split(':')[0]);
      expect(mine).toEqual(['tick', 'tick', 'tick']);
    } finally {
      await browser.close();
    }
  }, 30_000);
});

/** POSTs a JSON-RPC request to /mcp with raw http; resolves with the status, headers and raw body. */
function rawMcpPost(
  url: string,
  session: string,
  accept: string,
  body: unknown,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}/mcp`,
      {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${tokens.team}`,
          'Content-Type': 'application/json',
          Accept: accept,
          'Accept-Encoding': 'gzip',
          'Mcp-Session-Id': session,
          'MCP-Protocol-Version': '2025-11-25',
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(parts),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('SSE_COMPRESSION=gzip on /mcp', () => {
  it('gzips a POST reply stream (complete gzip member) and a JSON reply over 1 KiB', async () => {
    const session = await initializeSession(gatewayA.url, tokens.team);
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list' };
    const stream = await rawMcpPost(
      gatewayA.url,
      session,
      'application/json, text/event-stream',
      list,
    );
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toContain('text/event-stream');
    expect(stream.headers['content-encoding']).toBe('gzip');
    expect(stream.headers.vary).toContain('Accept-Encoding');
    // gunzipSync throws on a member without its trailer: the stream ended cleanly.
    const sse = gunzipSync(stream.body).toString();
    expect(sse).toContain('"tools":[');

    const json = await rawMcpPost(gatewayB.url, session, 'application/json', { ...list, id: 3 });
    expect(json.status).toBe(200);
    expect(json.headers['content-encoding']).toBe('gzip');
    expect(Number(json.headers['content-length'])).toBe(json.body.length);
    const reply = JSON.parse(gunzipSync(json.body).toString()) as { result: { tools: unknown[] } };
    expect(reply.result.tools.length).toBeGreaterThan(0);
    expect(json.body.length).toBeLessThan(Buffer.byteLength(JSON.stringify(reply)));

    // A small JSON reply stays as it is.
    const ping = await rawMcpPost(gatewayA.url, session, 'application/json', {
      jsonrpc: '2.0',
      id: 4,
      method: 'ping',
    });
    expect(ping.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(ping.body.toString())).toMatchObject({ id: 4, result: {} });
  });
});

describe('the demo page', () => {
  it('has a filter box that reconnects the stream with ?events=', async () => {
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`${gatewayB.url}/demo`);
      await page.fill('#token', tokens.team);
      await page.fill('#event-filter', 'broadcast:tick');
      const opened = page.waitForRequest((r) => r.url().includes('/mcp/sse?'));
      await page.click('#connect');
      expect((await opened).url()).toContain('events=broadcast%3Atick');
      await page.waitForSelector('#status[data-state="connected"]');
      const run = `d${Date.now()}`;
      const logged = (event: string) =>
        page.locator(`#log .entry[data-event="${event}"]`, { hasText: run }).count();
      await broadcast('other', run, 1);
      await broadcast('tick', run, 2);
      await waitFor(async () => (await logged('tick')) === 1, 5000, 'tick in the log');
      expect(await logged('other')).toBe(0);

      await page.fill('#event-filter', 'broadcast:other');
      const reopened = page.waitForRequest((r) => r.url().includes('events=broadcast%3Aother'));
      await page.click('#apply-filter');
      await reopened;
      await page.waitForSelector('#status[data-state="connected"]');
      await broadcast('tick', run, 3);
      await broadcast('other', run, 4);
      await waitFor(async () => (await logged('other')) === 1, 5000, 'other in the log');
      expect(await logged('tick')).toBe(1);
    } finally {
      await browser.close();
    }
  }, 30_000);
});
