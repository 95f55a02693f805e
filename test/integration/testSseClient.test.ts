/**
 * Issue 16: `npm run test-sse` as a user runs it, `node dist/bin/test-sse.js` against two real
 * gateways and a worker over a real Redis, its output piped (not a TTY, as in CI): one line per
 * step, `--raw`, a stream dropped mid-call shown as a resume on the other gateway, and a failing
 * exit code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { issueToken } from '../../shared/auth';
import { reapAll, spawnRole, type SpawnedProcess } from '../helpers/processes';
import { startProxy, type TestProxy } from '../helpers/proxy';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'test-sse-client-secret-0123456789abcdef';
const CLIENT = path.resolve(__dirname, '../../dist/bin/test-sse.js');
const team = issueToken(SECRET, { type: 'team', sub: 'test-sse-1', ttl: '1h' });

let redis: ProvidedRedis;
let env: Record<string, string>;
let gatewayA: SpawnedProcess;
let gatewayB: SpawnedProcess;
let proxy: TestProxy | undefined;
const clients = new Set<ChildProcess>();

interface ClientRun {
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Runs the client with its output piped; every line of it stays readable for assertions. */
function runClient(serverUrl: string, args: string[], token = team): ClientRun {
  const child = spawn(process.execPath, [CLIENT, ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      SERVER_URL: serverUrl,
      MCP_AUTH_TOKEN: token,
      TEST_SSE_TIMEOUT_MS: '30000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  clients.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      clients.delete(child);
      resolve(code);
    }),
  );
  return { stdout: () => stdout, stderr: () => stderr, exited };
}

/** Whether the progress lines' counts go strictly up (none repeated, none out of order). */
function steadilyUp(lines: string[]): boolean {
  const counts = lines.map((l) => Number(/progress (\d+)/.exec(l)![1]));
  return counts.length > 0 && counts.every((n, i) => i === 0 || n > counts[i - 1]);
}

beforeAll(async () => {
  redis = await provideRedis();
  env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix('test-sse'),
    JWT_SECRET: SECRET,
    CLEANUP_INTERVAL_MS: '500',
    RESUME_GRACE_MS: '15000',
    CLAIM_IDLE_MS: '1000',
  };
  [gatewayA, gatewayB] = await Promise.all([
    spawnRole('gateway', { ...env, POD_ID: 'test-sse-gateway-a' }),
    spawnRole('gateway', { ...env, POD_ID: 'test-sse-gateway-b' }),
    spawnRole('worker', { ...env, POD_ID: 'test-sse-worker' }),
  ]);
}, 60_000);

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

afterAll(async () => {
  for (const c of clients) c.kill('SIGKILL');
  await reapAll();
  await redis?.stop();
});

test('by default: one short line per step, plain progress lines when not a TTY, OK, exit 0', async () => {
  const run = runClient(gatewayB.url, ['--steps', '3', '--step-ms', '10']);
  expect(await run.exited).toBe(0);
  const lines = run.stdout().trimEnd().split('\n');
  expect(lines[0]).toMatch(/^• connected: \S+$/);
  expect(lines[1]).toMatch(/^• tools\/list: \d+ tools: .*\bsimulate_work\b/);
  expect(lines[2]).toMatch(/^• list_projects: \d+ projects$/);
  // Progress may be coalesced on the way (a newer one supersedes a queued one): in order, to 3/3.
  const progress = lines.slice(3, -2);
  expect(progress.every((l) => /^ {2}progress [1-3]\/3 Step [1-3] of 3$/.test(l))).toBe(true);
  expect(steadilyUp(progress)).toBe(true);
  expect(progress[progress.length - 1]).toBe('  progress 3/3 Step 3 of 3');
  expect(lines[lines.length - 2]).toMatch(/^• simulate_work: Completed 3 steps/);
  expect(lines[lines.length - 1]).toBe('OK');
  // No escape codes in a pipe, and no line near the 10 KB tools/list dump of old.
  expect(run.stdout()).not.toContain('\u001b[');
  expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(400);
  expect(run.stderr()).toBe('');
}, 40_000);

test('--raw prints every event as it arrives, the tools/list answer whole', async () => {
  const run = runClient(gatewayA.url, ['--raw', '--steps', '1', '--step-ms', '0']);
  expect(await run.exited).toBe(0);
  const out = run.stdout();
  expect(out).toMatch(/^← mcp-notification \[\S+\] \{.*"connectionId":/m);
  const list = out.split('\n').find((l) => l.startsWith('← mcp-response'));
  expect(list).toBeDefined();
  expect(JSON.parse(list!.slice(list!.indexOf('{'))).result.tools.length).toBeGreaterThan(3);
  expect(out.match(/^← tool-result /gm)).toHaveLength(3); // list_projects, 1 progress, result
  expect(out.trimEnd().endsWith('OK')).toBe(true);
}, 40_000);

test('a stream dropped mid-call (its gateway SIGKILLed) resumes on the other gateway with every step', async () => {
  const doomed = await spawnRole('gateway', { ...env, POD_ID: 'test-sse-gateway-doomed' });
  proxy = await startProxy(doomed.port);
  const run = runClient(proxy.url, ['--steps', '8', '--step-ms', '250']);
  await waitFor(() => run.stdout().includes('progress 2/8'), 20_000, 'progress 2 of 8');
  // The load balancer sends new connections (the reconnect, the next POSTs) to gateway B.
  proxy.setUpstream(gatewayB.port);
  await doomed.kill('SIGKILL');
  expect(await run.exited).toBe(0);
  const out = run.stdout();
  expect(out).toMatch(/^! connection dropped; reconnecting with Last-Event-ID \S+$/m);
  const connectionId = /^• connected: (\S+)$/m.exec(out)![1];
  expect(out).toMatch(new RegExp(`^• resumed ${connectionId} after event \\S+$`, 'm'));
  // Progress in order, never twice, to the end (what was sent while away is replayed).
  const progress = out.match(/^ {2}progress \d+\/8/gm)!;
  expect(steadilyUp(progress)).toBe(true);
  expect(progress[progress.length - 1]).toBe('  progress 8/8');
  expect(out).toMatch(/^• simulate_work: Completed 8 steps/m);
  expect(out.trimEnd().endsWith('OK')).toBe(true);
}, 60_000);

test('--events: the filter is named, and a step whose answer it filters out is not waited for', async () => {
  const run = runClient(gatewayA.url, [
    '--events',
    'tool-result,mcp-error',
    '--raw',
    '--steps',
    '1',
  ]);
  expect(await run.exited).toBe(0);
  const out = run.stdout();
  expect(out).toMatch(/^• connected: \S+ \(events: tool-result,mcp-error\)$/m);
  expect(out).toMatch(/^• tools\/list: sent, its answer is filtered out \(--events\)$/m);
  expect(out).toMatch(/^• simulate_work: Completed 1 step/m);
  expect(out.trimEnd().endsWith('OK')).toBe(true);
  // The gateway filtered the stream: after the welcome (an mcp-notification, always written),
  // only the named types came in.
  const received = [...out.matchAll(/^← (\S+) \[/gm)].map((m) => m[1]);
  expect(received[0]).toBe('mcp-notification');
  expect(received).toContain('tool-result');
  const allowed = ['tool-result', 'mcp-error', 'connection-status'];
  expect(received.slice(1).filter((name) => !allowed.includes(name!))).toEqual([]);
}, 40_000);

test('failures exit non-zero and say why: a refused token, a bad flag', async () => {
  const refused = runClient(gatewayA.url, [], 'not-a-token');
  expect(await refused.exited).toBe(1);
  expect(refused.stderr()).toMatch(/^FAILED: stream failed: HTTP 401 /);
  expect(refused.stdout()).not.toContain('OK');

  const usage = runClient(gatewayA.url, ['--steps', '99']);
  expect(await usage.exited).toBe(2);
  expect(usage.stderr()).toContain('--steps needs an integer from 1 to 20 (got 99)');
}, 30_000);
