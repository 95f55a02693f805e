import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { freePort } from './ports';
import { stopProcess } from './redisProcess';

/** A Redis for tests: REDIS_URL when set, else a redis-server this process spawned. */
export interface ProvidedRedis {
  url: string;
  /** True when spawned here: only then can restartRedis() stop and start it. */
  spawned: boolean;
  /** Kills a spawned server and waits for its exit; does nothing for REDIS_URL. */
  stop(): Promise<void>;
}

interface SpawnedServer {
  port: number;
  child?: ChildProcess;
  exited?: Promise<void>;
  output: string;
}

const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;

const spawnedServers = new WeakMap<ProvidedRedis, SpawnedServer>();
/** Every live child, killed if the test process exits without stopping them. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Gives a test file a real Redis (README, Testing): REDIS_URL when set; otherwise spawns
 * `redis-server` on a free port with persistence off, and waits until it answers PING.
 */
export async function provideRedis(): Promise<ProvidedRedis> {
  const external = process.env.REDIS_URL;
  if (external) return { url: external, spawned: false, stop: async () => undefined };

  const server: SpawnedServer = { port: await freePort(), output: '' };
  await startServer(server);
  const provided: ProvidedRedis = {
    url: `redis://127.0.0.1:${server.port}`,
    spawned: true,
    stop: () => stopServer(server),
  };
  spawnedServers.set(provided, server);
  return provided;
}

/**
 * Stops a spawned redis-server and starts a fresh one on the same port (its data is gone, as
 * after a restart without persistence). `whileDown` runs in between, for assertions on the
 * outage. Fails for REDIS_URL: a shared server is not ours to restart.
 */
export async function restartRedis(
  redis: ProvidedRedis,
  whileDown?: () => Promise<void>,
): Promise<void> {
  const server = spawnedServers.get(redis);
  if (!server) throw new Error('restartRedis: only a spawned redis-server can be restarted');
  await stopServer(server);
  try {
    if (whileDown) await whileDown();
  } finally {
    await startServer(server);
  }
}

/** A key prefix no other test uses, e.g. `test:engine:3f9a1c2e:`. */
export function uniquePrefix(label: string): string {
  return `test:${label}:${randomBytes(4).toString('hex')}:`;
}

async function startServer(server: SpawnedServer): Promise<void> {
  installExitHook();
  server.output = '';
  const child = spawn(
    'redis-server',
    ['--port', String(server.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const collect = (chunk: Buffer) => {
    server.output = (server.output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  server.child = child;
  liveChildren.add(child);

  let failure: Error | undefined;
  server.exited = new Promise<void>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      failure =
        error.code === 'ENOENT'
          ? new Error('no Redis: set REDIS_URL or install redis-server')
          : error;
      liveChildren.delete(child);
      resolve();
    });
    child.once('exit', (code, signal) => {
      failure ??= new Error(
        `redis-server exited (${code ?? signal}) on port ${server.port}:\n${server.output}`,
      );
      liveChildren.delete(child);
      resolve();
    });
  });

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await answersPing(server.port))) {
    if (failure) throw failure;
    if (Date.now() > deadline) {
      await stopServer(server);
      throw new Error(`redis-server on port ${server.port} did not answer PING:\n${server.output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function stopServer(server: SpawnedServer): Promise<void> {
  const { child, exited } = server;
  if (!child || !exited) return;
  server.child = undefined;
  await stopProcess(child, exited, STOP_GRACE_MS);
}

/**
 * True when a Redis on this loopback port answers PING: sent on a raw socket, +PONG is true and
 * anything else (refused, loading...) false.
 */
export function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
  });
}
