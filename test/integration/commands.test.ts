/**
 * The user-facing commands of the README, as processes: `npm start` (memory engine, printed
 * tokens), `npm run token`, and `npm run test-sse` against a running gateway.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTokenVerifier } from '../../shared/auth';
import { reapAll, spawnRole, type SpawnedProcess } from '../helpers/processes';
import { waitFor } from '../../devSupport/waitFor';
import { freePort } from '../../devSupport/ports';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
const bin = (name: string) => path.join(ROOT, 'dist/bin', `${name}.js`);

let start: SpawnedProcess;
let printedTokens: Record<string, string>;

beforeAll(async () => {
  // No JWT_SECRET and no REDIS_URL: the laptop set-up of `make run`.
  start = await spawnRole('start', { LOG_LEVEL: 'warn' });
  await waitFor(() => /readonly\s+\S+/.test(start.output()), 5_000, 'tokens printed');
  printedTokens = Object.fromEntries(
    [...start.output().matchAll(/^\s+(master|team|readonly)\s+(\S+)$/gm)].map((m) => [m[1], m[2]]),
  );
}, 30_000);

afterAll(() => reapAll());

test('npm start prints the URL, the engine and one token per type', () => {
  expect(start.output()).toContain(`listening on http://localhost:${start.port} (engine: memory)`);
  expect(Object.keys(printedTokens).sort()).toEqual(['master', 'readonly', 'team']);
});

test('npm run test-sse lists the tools, calls one and exits 0 with a printed token', async () => {
  const { stdout } = await run(process.execPath, [bin('test-sse')], {
    env: { PATH: process.env.PATH, SERVER_URL: start.url, MCP_AUTH_TOKEN: printedTokens.readonly },
    timeout: 20_000,
  });
  expect(stdout).toMatch(/^• tools\/list: \d+ tools: .*list_projects/m);
  expect(stdout).toMatch(/^• list_projects: \d+ projects$/m);
  expect(stdout.trimEnd().split('\n').pop()).toBe('OK');
});

test('npm run test-sse exits non-zero on a bad token or an unreachable server', async () => {
  await expect(
    run(process.execPath, [bin('test-sse')], {
      env: { PATH: process.env.PATH, SERVER_URL: start.url, MCP_AUTH_TOKEN: 'not-a-jwt' },
      timeout: 20_000,
    }),
  ).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('FAILED') });
  await expect(
    run(process.execPath, [bin('test-sse')], {
      env: { PATH: process.env.PATH, SERVER_URL: start.url },
      timeout: 20_000,
    }),
  ).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('MCP_AUTH_TOKEN') });
  const nobody = `http://127.0.0.1:${await freePort()}`; // nothing listens there
  await expect(
    run(process.execPath, [bin('test-sse')], {
      env: { PATH: process.env.PATH, SERVER_URL: nobody, MCP_AUTH_TOKEN: 'x' },
      timeout: 20_000,
    }),
  ).rejects.toMatchObject({
    code: 1,
    stderr: expect.stringContaining(`(is ${nobody} up?)`),
  });
});

test('npm run token signs a token the gateway accepts, with type, sub, ttl and tools', async () => {
  const secret = 'token-command-secret-0123456789';
  const { stdout } = await run(
    process.execPath,
    [
      bin('token'),
      '--type',
      'team',
      '--sub',
      'alice',
      '--ttl',
      '1h',
      '--tools',
      'list_projects,get_project_tree',
    ],
    { env: { PATH: process.env.PATH, JWT_SECRET: secret } },
  );
  const claims = createTokenVerifier({ jwtSecret: secret }).verify(stdout.trim());
  expect(claims).toMatchObject({
    sub: 'alice',
    type: 'team',
    tools: ['list_projects', 'get_project_tree'],
  });
  expect(claims.exp! - Date.now() / 1000).toBeGreaterThan(3500);

  await expect(
    run(process.execPath, [bin('token'), '--type', 'wizard'], {
      env: { PATH: process.env.PATH, JWT_SECRET: secret },
    }),
  ).rejects.toMatchObject({ code: 2 });
  await expect(
    run(process.execPath, [bin('token'), '--type', 'team'], { env: { PATH: process.env.PATH } }),
  ).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('JWT_SECRET') });
});

test('gateway and worker roles refuse to start without a Redis mode', async () => {
  for (const role of ['gateway', 'worker'] as const) {
    const proc = await spawnRole(role, { JWT_SECRET: 'x'.repeat(32) }, { waitReady: false });
    expect(await proc.exited).toBe(1);
    expect(proc.output()).toContain(
      `a ${role} process needs Redis: REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS`,
    );
  }
});

test('a gateway pod refuses to start without JWT_SECRET, JWT_PUBLIC_KEY or OAUTH_ISSUER', async () => {
  // Checked before anything connects: nothing listens on this Redis port.
  const proc = await spawnRole(
    'gateway',
    { REDIS_URL: 'redis://127.0.0.1:1' },
    { waitReady: false },
  );
  expect(await proc.exited).toBe(1);
  expect(proc.output()).toContain(
    'JWT_SECRET, JWT_PUBLIC_KEY or OAUTH_ISSUER is required: every pod must verify the same tokens',
  );
});
