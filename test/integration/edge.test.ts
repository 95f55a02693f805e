/**
 * The HTTP edge on the Redis engine, with real gateway processes: rate limits counted across
 * pods, pathological JSON refused with 400 (not 503), the placeholder-secret warning, and the
 * token CLI's default expiry.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { issueToken } from '../../shared/auth';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { spawnRole } from '../helpers/processes';

const SECRET = 'edge-test-secret-0123456789abcdef';
const RATE_LIMIT_MAX = 50;

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster('edge', {
    gateways: 2,
    workers: 1,
    jwtSecret: SECRET,
    // One window for the whole test: nothing resets the count mid-way.
    env: { RATE_LIMIT_MAX: String(RATE_LIMIT_MAX), RATE_LIMIT_WINDOW_MS: '600000' },
  });
});

afterAll(async () => {
  await cluster?.stop();
});

const tokenFor = (sub: string) => issueToken(SECRET, { type: 'master', sub, ttl: '1h' });

test('RATE_LIMIT_MAX holds across pods: 100 requests over two gateways, exactly 50 accepted', async () => {
  const token = tokenFor('rate-limited');
  const [a, b] = cluster.gateways;
  // Two rounds of RATE_LIMIT_MAX requests, each round spread over both pods: the first uses up
  // the window's count, so every request of the second is refused, by either pod (a per-pod
  // count would accept both rounds).
  const round = () =>
    Promise.all(
      Array.from({ length: RATE_LIMIT_MAX }, (_, i) =>
        fetch(`${(i % 2 === 0 ? a : b).url}/mcp/sse/stats`, {
          headers: { Authorization: `Bearer ${token}` },
        }),
      ),
    );
  const first = await round();
  expect(first.map((r) => r.status)).toEqual(Array(RATE_LIMIT_MAX).fill(200));
  const refused = await round();
  expect(refused.map((r) => r.status)).toEqual(Array(RATE_LIMIT_MAX).fill(429));
  for (const r of refused) {
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await r.json()).toEqual({
      error: { code: 'rate_limited', message: 'Too many requests' },
    });
  }
  expect(new Set(refused.map((r) => new URL(r.url).port)).size).toBe(2);
  // Another token has its own count.
  const other = await fetch(`${b.url}/mcp/sse/stats`, {
    headers: { Authorization: `Bearer ${tokenFor('someone-else')}` },
  });
  expect(other.status).toBe(200);
});

test('a body nested 5,000 levels deep gets 400 on every JSON route, nothing logged at error', async () => {
  const token = tokenFor('deep-json');
  const deep = '['.repeat(5000) + ']'.repeat(5000);
  const gateway = cluster.gateways[0];
  const outputBefore = gateway.output().length;
  // Well-formed bodies otherwise, so nothing but the depth can refuse them.
  const bodies: Record<string, string> = {
    '/mcp/sse/send': `{"connectionId":"c","message":{"method":"ping","params":{"a":${deep}}}}`,
    '/mcp/sse/broadcast': `{"message":{"type":"deep","a":${deep}}}`,
    '/mcp': `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":${deep}}}`,
    '/messages?sessionId=x': `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":${deep}}}`,
  };
  for (const [route, body] of Object.entries(bodies)) {
    const res = await fetch(`${gateway.url}${route}`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
      },
      body,
    });
    const answer = (await res.json()) as Record<string, unknown>;
    expect({ route, status: res.status }).toEqual({ route, status: 400 });
    expect(res.headers.get('retry-after')).toBeNull();
    expect(JSON.stringify(answer)).toContain('JSON body nests deeper than 64 levels');
  }
  expect(gateway.output().slice(outputBefore)).not.toContain('"level":"error"');
});

test('a gateway started with the compose placeholder secret says so at error level', async () => {
  const gateway = await spawnRole('gateway', {
    ...cluster.env,
    JWT_SECRET: 'local-compose-secret-change-me',
    POD_ID: 'gateway-placeholder',
  });
  try {
    const line = gateway
      .output()
      .split('\n')
      .find((l) => l.includes('JWT_SECRET is a placeholder'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ level: 'error' });
  } finally {
    await gateway.kill();
  }
  // The cluster's own gateways, on a secret of their own, do not.
  expect(cluster.gateways[0].output()).not.toContain('JWT_SECRET is a placeholder');
});

describe('npm run token', () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [path.resolve(__dirname, '../../dist/bin/token.js'), ...args], {
      env: { PATH: process.env.PATH ?? '', JWT_SECRET: SECRET },
      encoding: 'utf8',
    });
  const claims = (stdout: string) => jwt.verify(stdout.trim(), SECRET) as jwt.JwtPayload;

  test('issues tokens that expire after 24h by default', () => {
    const out = run('--type', 'team', '--sub', 'cli');
    expect(out.status).toBe(0);
    const c = claims(out.stdout);
    expect(c.exp! - c.iat!).toBe(24 * 3600);
    expect(c).toMatchObject({ type: 'team', sub: 'cli' });
  });

  test('--ttl sets the expiry; a token that never expires needs --no-expiry', () => {
    const short = claims(run('--type', 'readonly', '--ttl', '1h').stdout);
    expect(short.exp! - short.iat!).toBe(3600);
    const forever = run('--type', 'master', '--no-expiry');
    expect(forever.status).toBe(0);
    expect(claims(forever.stdout).exp).toBeUndefined();
    const both = run('--type', 'master', '--no-expiry', '--ttl', '1h');
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('--ttl and --no-expiry exclude each other');
  });
});
