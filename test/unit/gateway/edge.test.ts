/**
 * The HTTP edge: one Origin/Host policy for every route, request timeouts that never cut a
 * stream, an auth failure that closes the socket, JSON bodies bounded in depth, JSON-RPC errors
 * that carry the request's id, and metrics route labels.
 */
import http from 'node:http';
import net from 'node:net';
import { MemoryEngine } from '../../../shared/engine/memory';
import { silentLogger, type Logger } from '../../../shared/logger';
import { createMetrics } from '../../../shared/metrics';
import { createWorker } from '../../../worker/worker';
import { captureLogs, type CapturedLogs } from '../../helpers/logs';
import { initializeRequest } from '../../helpers/mcpHttp';
import {
  startGateway as startBareGateway,
  type GatewayHarness,
} from '../../helpers/gatewayHarness';
import { sleep } from '../../../devSupport/waitFor';
import { api, expectError } from './api';
import { openRawSse } from './rawSse';

const initialize = initializeRequest('edge-test');

/** A gateway and a worker sharing a memory engine: MCP requests get answered. */
async function startGateway(
  options: { env?: Record<string, string>; logger?: Logger } = {},
): Promise<GatewayHarness> {
  const engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
  await engine.start();
  const gw = await startBareGateway({ ...options, engine });
  const worker = createWorker({
    config: gw.config,
    engine,
    logger: silentLogger(),
    metrics: createMetrics('worker'),
  });
  await worker.start();
  const closeGateway = gw.close;
  gw.close = async () => {
    await closeGateway();
    await worker.stop();
    await engine.close();
  };
  return gw;
}

/** A raw HTTP request with any Host header (fetch does not let a caller set Host). */
function rawRequest(
  url: string,
  options: { method: string; path: string; headers: Record<string, string>; body?: string },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: options.method,
        path: options.path,
        headers: options.headers,
        setHost: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** What an SDK client sends with `Origin` added: an initialize POST to /mcp. */
function postInitialize(gw: GatewayHarness, headers: Record<string, string>) {
  return rawRequest(gw.url, {
    method: 'POST',
    path: '/mcp',
    headers: {
      Host: new URL(gw.url).host,
      Authorization: `Bearer ${gw.tokens.team}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(initialize),
  });
}

/** Open, then closed by the server: resolves with how long the socket lived, in ms. */
function socketLife(socket: net.Socket): Promise<number> {
  const started = Date.now();
  // Reading, or the server's FIN is never seen.
  socket.resume();
  return new Promise((resolve) => socket.once('close', () => resolve(Date.now() - started)));
}

function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

describe('origin policy, defaults (ALLOWED_ORIGINS unset)', () => {
  let gw: GatewayHarness;
  let logs: CapturedLogs;
  beforeAll(async () => {
    logs = captureLogs();
    gw = await startGateway({ logger: logs.logger });
  });
  afterAll(() => gw.close());

  it('allows requests without Origin and same-origin requests on every transport', async () => {
    const host = new URL(gw.url).host;
    expect((await postInitialize(gw, { Host: host })).status).toBe(200);
    const sameOrigin = await postInitialize(gw, { Host: host, Origin: gw.url });
    expect(sameOrigin.status).toBe(200);
    expect(sameOrigin.headers['access-control-allow-origin']).toBe(gw.url);

    const send = await api(gw.url, '/mcp/sse/send', {
      token: gw.tokens.team,
      json: { connectionId: 'nope', message: { method: 'tools/list' } },
      headers: { Origin: gw.url },
    });
    expectError(send, 404, 'not_found');
    const seedStream = await openRawSse(`${gw.url}/mcp/sse`, {
      Authorization: `Bearer ${gw.tokens.team}`,
      Origin: gw.url,
    });
    seedStream.close();
    expect(seedStream.status).toBe(200);
    const legacy = await openRawSse(`${gw.url}/sse`, {
      Authorization: `Bearer ${gw.tokens.team}`,
      Origin: gw.url,
    });
    legacy.close();
    expect(legacy.status).toBe(200);
  });

  it('refuses any other Origin with 403 on /mcp, /sse, /messages and the seed API', async () => {
    const evil = { Origin: 'http://evil.example' };
    const mcp = await postInitialize(gw, evil);
    expect(mcp.status).toBe(403);
    expect(JSON.parse(mcp.text)).toMatchObject({
      jsonrpc: '2.0',
      error: { code: -32000, message: 'Origin not allowed: http://evil.example' },
    });
    const legacy = await api(gw.url, '/sse', { token: gw.tokens.team, headers: evil });
    expect(legacy.status).toBe(403);
    const messages = await api(gw.url, '/messages?sessionId=x', {
      token: gw.tokens.team,
      json: { jsonrpc: '2.0', id: 1, method: 'ping' },
      headers: evil,
    });
    expect(messages.status).toBe(403);
    for (const path of ['/mcp/sse', '/mcp/sse/stats']) {
      expectError(await api(gw.url, path, { token: gw.tokens.team, headers: evil }), 403);
    }
    expectError(
      await api(gw.url, '/mcp/sse/send', {
        token: gw.tokens.team,
        json: { connectionId: 'c', message: { method: 'tools/list' } },
        headers: evil,
      }),
      403,
      'forbidden',
    );
    // A host that merely looks alike (another port) is another origin.
    const { hostname, port } = new URL(gw.url);
    const otherPort = await postInitialize(gw, {
      Origin: `http://${hostname}:${Number(port) + 1}`,
    });
    expect(otherPort.status).toBe(403);
  });

  it('does not warn about the origin policy', () => {
    expect(logs.lines.join('\n')).not.toContain('ALLOWED_ORIGINS=*');
  });
});

describe('origin policy, ALLOWED_ORIGINS listed or *', () => {
  it('allows a listed origin and refuses others', async () => {
    const gw = await startGateway({ env: { ALLOWED_ORIGINS: 'https://app.example' } });
    try {
      const ok = await postInitialize(gw, { Origin: 'https://app.example' });
      expect(ok.status).toBe(200);
      expect(ok.headers['access-control-allow-origin']).toBe('https://app.example');
      expect((await postInitialize(gw, { Origin: 'https://other.example' })).status).toBe(403);
    } finally {
      await gw.close();
    }
  });

  it('* allows every origin, and the gateway warns at start', async () => {
    const logs = captureLogs();
    const gw = await startGateway({ env: { ALLOWED_ORIGINS: '*' }, logger: logs.logger });
    try {
      const ok = await postInitialize(gw, { Origin: 'http://evil.example' });
      expect(ok.status).toBe(200);
      expect(ok.headers['access-control-allow-origin']).toBe('*');
      const warning = logs.records().find((r) => String(r.message).includes('ALLOWED_ORIGINS=*'));
      expect(warning).toMatchObject({ level: 'warn' });
    } finally {
      await gw.close();
    }
  });
});

describe('Host validation on a loopback-bound gateway (DNS rebinding)', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({ env: { HOST: '127.0.0.1' } });
  });
  afterAll(() => gw.close());

  it('passes the conformance scenario dns-rebinding-protection', async () => {
    // The scenario's two requests: Host and Origin of another site, then of the server itself.
    const rebound = await postInitialize(gw, {
      Host: 'evil.example.com',
      Origin: 'http://evil.example.com',
    });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.text).error.message).toBe('Host not allowed: evil.example.com');
    const host = new URL(gw.url).host;
    const valid = await postInitialize(gw, { Host: host, Origin: `http://${host}` });
    expect(valid.status).toBe(200);
  });

  it('accepts localhost, 127.0.0.1 and [::1] with any port, and nothing else', async () => {
    for (const host of ['localhost', 'localhost:1234', '127.0.0.1:9', '[::1]:3000', '[::1]']) {
      expect({ host, status: (await postInitialize(gw, { Host: host })).status }).toEqual({
        host,
        status: 200,
      });
    }
    for (const host of ['evil.example', '127.0.0.1.evil.example', 'localhost.evil:80']) {
      const res = await rawRequest(gw.url, {
        method: 'GET',
        path: '/health',
        headers: { Host: host },
      });
      expect({ host, status: res.status }).toEqual({ host, status: 403 });
    }
  });

  it('is off when bound to all interfaces', async () => {
    const open = await startGateway({ env: { HOST: '0.0.0.0' } });
    try {
      const res = await postInitialize(open, { Host: 'mcp.example.com' });
      expect(res.status).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe('an auth failure closes the connection without reading the body', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    // The default REQUEST_TIMEOUT_MS (30 s): only the 401 can close the socket this soon.
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it.each(['/mcp/sse/send', '/mcp', '/messages?sessionId=x'])(
    'POST %s without a token, trickling a 100 KB body',
    async (path) => {
      const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1');
      const life = socketLife(socket);
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (received += chunk));
      socket.on('error', () => undefined);
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          'Content-Length: 102400\r\n\r\n[',
      );
      const trickle = setInterval(() => {
        if (!socket.destroyed) socket.write(' '.repeat(100));
      }, 20);
      try {
        const lived = await life;
        expect(lived).toBeLessThan(5000);
        expect(received).toMatch(/^HTTP\/1\.1 401 /);
        expect(received.toLowerCase()).toContain('connection: close');
      } finally {
        clearInterval(trickle);
        socket.destroy();
      }
    },
  );
});

describe('REQUEST_TIMEOUT_MS', () => {
  const TIMEOUT_MS = 1000;
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({
      env: { REQUEST_TIMEOUT_MS: String(TIMEOUT_MS), HEARTBEAT_INTERVAL_MS: '200' },
    });
  });
  afterAll(() => gw.close());

  const connect = () => {
    const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1');
    socket.on('error', () => undefined);
    return socket;
  };

  it('closes a connection whose headers never finish', async () => {
    const socket = connect();
    const life = socketLife(socket);
    socket.write('GET /mcp/sse HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const lived = await life;
    expect(lived).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(lived).toBeLessThan(TIMEOUT_MS * 4);
  });

  it('closes an authenticated request whose body stalls half-sent (408)', async () => {
    const socket = connect();
    const life = socketLife(socket);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.write(
      `POST /mcp/sse/send HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${gw.tokens.team}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"connectionId":',
    );
    const lived = await life;
    expect(lived).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(lived).toBeLessThan(TIMEOUT_MS * 4);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('never cuts a stream: /mcp/sse, /sse and GET /mcp stay open past it', async () => {
    const auth = { Authorization: `Bearer ${gw.tokens.team}` };
    const init = await postInitialize(gw, { Accept: 'application/json' });
    const sessionId = String(init.headers['mcp-session-id']);
    const streams = await Promise.all([
      openRawSse(`${gw.url}/mcp/sse`, auth),
      openRawSse(`${gw.url}/sse`, auth),
      openRawSse(`${gw.url}/mcp`, { ...auth, 'Mcp-Session-Id': sessionId }),
    ]);
    let ended = 0;
    for (const s of streams) {
      expect(s.status).toBe(200);
      void s.ended.then(() => ended++);
    }
    try {
      await sleep(TIMEOUT_MS * 2.5);
      expect(ended).toBe(0);
      // Still delivering: a heartbeat after the timeout.
      const before = streams[0].events.length;
      await streams[0].next((_e) => streams[0].events.length > before, 2000);
    } finally {
      for (const s of streams) s.close();
    }
  });
});

describe('pathological JSON bodies', () => {
  let gw: GatewayHarness;
  let logs: CapturedLogs;
  beforeAll(async () => {
    logs = captureLogs();
    gw = await startGateway({ logger: logs.logger });
  });
  afterAll(() => gw.close());

  it.each(['/mcp/sse/send', '/mcp/sse/broadcast'])(
    '%s: 5,000 levels deep gets 400 JSON, nothing logged at error',
    async (path) => {
      const before = logs.lines.length;
      const res = await api(gw.url, path, { token: gw.tokens.master, rawBody: nested(5000) });
      expect(expectError(res, 400, 'bad_request').message).toBe(
        'JSON body nests deeper than 64 levels',
      );
      expect(
        logs
          .records()
          .slice(before)
          .filter((r) => r.level === 'error'),
      ).toEqual([]);
    },
  );

  it.each(['/mcp', '/messages?sessionId=x'])(
    '%s: 5,000 levels deep gets 400 with a JSON-RPC error',
    async (path) => {
      const before = logs.lines.length;
      const res = await api(gw.url, path, {
        token: gw.tokens.team,
        rawBody: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":${nested(5000)}}}`,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({
        jsonrpc: '2.0',
        error: { message: 'JSON body nests deeper than 64 levels' },
      });
      expect(
        logs
          .records()
          .slice(before)
          .filter((r) => r.level === 'error'),
      ).toEqual([]);
    },
  );

  it('nesting within the limit is parsed as before, brackets inside strings do not count', async () => {
    // 64 levels deep, the limit: {message: {payload: 62 levels}}; `text` holds brackets, \\ and \".
    const depth64 = JSON.parse(nested(62)) as unknown;
    const res = await api(gw.url, '/mcp/sse/broadcast', {
      token: gw.tokens.master,
      json: { message: { type: 'deep', payload: depth64, text: '[[[[{{{{\\"'.repeat(100) } },
    });
    expect(res.status).toBe(202);
  });

  it('counts depth on the characters, whatever the charset (UTF-16: 0x5b bytes inside letters)', async () => {
    const body = JSON.stringify({ message: { type: 'utf16', text: '\u5b5b\u7b7b'.repeat(200) } });
    const res = await fetch(`${gw.url}/mcp/sse/broadcast`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${gw.tokens.master}`,
        'Content-Type': 'application/json; charset=utf-16le',
      },
      body: Buffer.from(body, 'utf16le'),
    });
    expect(res.status).toBe(202);
  });
});

describe('JSON-RPC errors and route labels', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  it("carry the request's id whenever the body was parsed", async () => {
    const unknownSession = await api(gw.url, '/mcp', {
      token: gw.tokens.team,
      json: { jsonrpc: '2.0', id: 42, method: 'tools/list' },
      headers: { 'Mcp-Session-Id': 'f'.repeat(32), Accept: 'application/json' },
    });
    expect(unknownSession.status).toBe(404);
    expect(unknownSession.body).toMatchObject({ error: { code: -32001 }, id: 42 });
    const badVersion = await api(gw.url, '/mcp', {
      token: gw.tokens.team,
      json: { jsonrpc: '2.0', id: 'abc', method: 'tools/list' },
      headers: { 'Mcp-Session-Id': 'f'.repeat(32), 'MCP-Protocol-Version': '1999-01-01' },
    });
    expect(badVersion.body).toMatchObject({ id: 'abc' });
    const messages = await api(gw.url, '/messages?sessionId=nope', {
      token: gw.tokens.team,
      json: { jsonrpc: '2.0', id: 7, method: 'ping' },
    });
    expect(messages.status).toBe(404);
    expect(messages.body).toMatchObject({ id: 7 });
    // Unparseable, a batch, or rejected before the body was read: no id to give.
    const garbage = await api(gw.url, '/mcp', { token: gw.tokens.team, rawBody: '{"id":5,' });
    expect(garbage.body).toMatchObject({ error: { code: -32700 }, id: null });
    const unauthorized = await api(gw.url, '/mcp', {
      json: { jsonrpc: '2.0', id: 9, method: 'ping' },
    });
    expect(unauthorized.body).toMatchObject({ id: null });
  });

  it('/metrics labels the MCP routes once (/mcp, not /mcp/mcp)', async () => {
    await api(gw.url, '/mcp', {
      token: gw.tokens.team,
      json: { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      headers: { 'Mcp-Session-Id': 'f'.repeat(32) },
    });
    await api(gw.url, '/sse');
    await api(gw.url, '/messages', {
      token: gw.tokens.team,
      json: { jsonrpc: '2.0', method: 'x' },
    });
    const metrics = (await api(gw.url, '/metrics')).text;
    expect(metrics).not.toMatch(/route="\/(mcp\/mcp|sse\/sse|messages\/messages)"/);
    expect(metrics).toMatch(/route="\/mcp",method="POST",status="404"/);
    expect(metrics).toMatch(/route="\/sse",method="GET",status="401"/);
    expect(metrics).toMatch(/route="\/messages",method="POST",status="400"/);
  });
});
