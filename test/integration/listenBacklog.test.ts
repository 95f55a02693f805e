/**
 * LISTEN_BACKLOG on a real gateway process: the listening socket's backlog as the kernel holds
 * it (`ss -ltn` shows it as a LISTEN socket's Send-Q, read over inet_diag), the warning when
 * net.core.somaxconn caps it, and a bad value refused at start.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { spawnRole } from '../helpers/processes';

const SECRET = 'listen-backlog-secret-0123456789abcdef';
const SOMAXCONN = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
const CAPPED_WARNING = 'is above net.core.somaxconn';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster('backlog', { gateways: 0, workers: 0, jwtSecret: SECRET });
}, 30_000);

afterAll(async () => {
  await cluster?.stop();
});

/** The backlog of the socket listening on 127.0.0.1:<port>, as the kernel reports it. */
function listenBacklog(port: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
  const lines = out.trim().split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  // State Recv-Q Send-Q Local Peer: for a LISTEN socket Send-Q is the backlog.
  const [state, , sendQ] = lines[0].trim().split(/\s+/);
  expect(state).toBe('LISTEN');
  return Number(sendQ);
}

test('LISTEN_BACKLOG is the listening socket backlog', async () => {
  const backlog = Math.min(1234, SOMAXCONN - 1);
  const gateway = await spawnRole('gateway', {
    ...cluster.env,
    LISTEN_BACKLOG: String(backlog),
  });
  expect(listenBacklog(gateway.port)).toBe(backlog);
  expect(gateway.output()).not.toContain(CAPPED_WARNING);
  await gateway.kill();
});

test('unset, the backlog is far above Node’s 511: the default, capped by somaxconn', async () => {
  const gateway = await spawnRole('gateway', cluster.env);
  expect(listenBacklog(gateway.port)).toBe(Math.min(16_384, SOMAXCONN));
  await gateway.kill();
});

test('above net.core.somaxconn the kernel caps it, and the gateway warns at start', async () => {
  const gateway = await spawnRole('gateway', {
    ...cluster.env,
    LISTEN_BACKLOG: String(SOMAXCONN + 1),
  });
  expect(listenBacklog(gateway.port)).toBe(SOMAXCONN);
  expect(gateway.output()).toContain(
    `LISTEN_BACKLOG=${SOMAXCONN + 1} is above net.core.somaxconn=${SOMAXCONN}`,
  );
  await gateway.kill();
});

test.each(['0', '-5', 'lots', '1.5', '99999999999'])(
  'LISTEN_BACKLOG=%s is refused at start with a clear error',
  async (value) => {
    const gateway = await spawnRole(
      'gateway',
      { ...cluster.env, LISTEN_BACKLOG: value },
      { waitReady: false },
    );
    expect(await gateway.exited).toBe(1);
    expect(gateway.output()).toMatch(/Invalid configuration: LISTEN_BACKLOG: /);
  },
);
