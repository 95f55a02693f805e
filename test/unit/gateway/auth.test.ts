import { EventSource } from 'eventsource';
import jwt from 'jsonwebtoken';
import { TEST_JWT_SECRET, startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { api, expectError } from './api';
import { openRawSse } from './rawSse';

const API_ROUTES: Array<[string, string]> = [
  ['GET', '/mcp/sse'],
  ['POST', '/mcp/sse/send'],
  ['POST', '/mcp/sse/broadcast'],
  ['GET', '/mcp/sse/stats'],
];

const nowS = () => Math.floor(Date.now() / 1000);

describe('gateway authentication and authorization', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(() => gw.close());

  const call = (method: string, path: string, token?: string, extra: Record<string, string> = {}) =>
    api(gw.url, path, {
      method,
      token,
      headers: extra,
      ...(method === 'POST'
        ? { json: { connectionId: 'x', message: { method: 'tools/list' } } }
        : {}),
    });

  it.each(API_ROUTES)(
    '%s %s without a token: 401 JSON with WWW-Authenticate',
    async (method, path) => {
      const res = await call(method, path);
      expect(expectError(res, 401, 'unauthorized').message).toBe('Missing token');
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    },
  );

  const badTokens: Array<[string, () => string, RegExp]> = [
    [
      'a bad signature',
      () => jwt.sign({ type: 'team' }, 'another-secret-0123456789', { subject: 'x' }),
      /Invalid token/,
    ],
    [
      'an expired token',
      () => jwt.sign({ type: 'team', exp: nowS() - 10 }, TEST_JWT_SECRET, { subject: 'x' }),
      /expired/,
    ],
    [
      'an unknown token type',
      () => jwt.sign({ type: 'admin' }, TEST_JWT_SECRET, { subject: 'x' }),
      /Unknown token type/,
    ],
    ['a token without sub', () => jwt.sign({ type: 'team' }, TEST_JWT_SECRET), /sub/],
    ['garbage', () => 'not-a-jwt', /Invalid token/],
  ];

  describe.each(API_ROUTES)('%s %s', (method, path) => {
    it.each(badTokens)('rejects %s with 401', async (_what, makeToken, message) => {
      const res = await call(method, path, makeToken());
      expect(expectError(res, 401, 'unauthorized').message).toMatch(message);
    });
  });

  it.each(['Basic abc', 'Bearer', 'Bearer a b', 'token abc'])(
    'rejects the Authorization header %j with 401',
    async (header) => {
      const res = await api(gw.url, '/mcp/sse/stats', { headers: { Authorization: header } });
      expect(expectError(res, 401).message).toMatch(/Bearer/);
    },
  );

  it.each(API_ROUTES.filter(([, path]) => path !== '/mcp/sse'))(
    'rejects a query token on %s %s (401, header only)',
    async (method, path) => {
      const res = await call(method, `${path}?token=${gw.tokens.master}`);
      expect(expectError(res, 401, 'unauthorized').message).toMatch(
        /query token.*GET \/mcp\/sse only/,
      );
    },
  );

  it('accepts a query token on GET /mcp/sse', async () => {
    const stream = await openRawSse(`${gw.url}/mcp/sse?token=${gw.tokens.readonly}`);
    try {
      expect(stream.status).toBe(200);
      const welcome = await stream.next((e) => e.event === 'mcp-notification');
      expect(JSON.parse(welcome.data)).toMatchObject({ tokenType: 'readonly' });
    } finally {
      stream.close();
    }
  });

  it("accepts a query token from the eventsource package (a browser's EventSource)", async () => {
    const source = new EventSource(`${gw.url}/mcp/sse?token=${gw.tokens.team}`);
    try {
      const data = await new Promise<string>((resolve, reject) => {
        source.addEventListener('mcp-notification', (e) => resolve(e.data));
        source.onerror = (e) => reject(new Error(`SSE error ${e.code}`));
      });
      expect(JSON.parse(data)).toMatchObject({ type: 'mcp-notification', tokenType: 'team' });
    } finally {
      source.close();
    }
  });

  it('rejects an expired query token on GET /mcp/sse with 401 JSON', async () => {
    const expired = jwt.sign({ type: 'team', exp: nowS() - 1 }, TEST_JWT_SECRET, { subject: 'x' });
    const res = await api(gw.url, `/mcp/sse?token=${expired}`);
    expect(expectError(res, 401).message).toBe('Token expired');
  });

  it.each([
    ['team', 'POST', '/mcp/sse/broadcast'],
    ['team', 'GET', '/mcp/sse/stats'],
    ['readonly', 'POST', '/mcp/sse/broadcast'],
    ['readonly', 'GET', '/mcp/sse/stats'],
  ] as const)('a %s token on %s %s: 403', async (type, method, path) => {
    const res = await call(method, path, gw.tokens[type]);
    expect(expectError(res, 403, 'forbidden').message).toMatch(/master/);
  });

  it('lets a master token read stats', async () => {
    const res = await call('GET', '/mcp/sse/stats', gw.tokens.master);
    expect(res.status).toBe(200);
  });
});
