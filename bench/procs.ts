/**
 * Processes of a benchmark run: redis-server, gateway and worker from dist/, load generators.
 * Every one is tracked and reaped (SIGTERM, then SIGKILL after a grace period) by reapAll(),
 * and SIGKILLed if the benchmark process exits without having done so.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../devSupport/ports';
import { answersPing } from '../devSupport/redis';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

/** The repository root (this file runs from dist/bench/). */
export const ROOT = path.resolve(__dirname, '../..');

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The last few KB it printed (stdout and stderr), for failure messages. */
  output(): string;
  exited: Promise<number | string>;
  isRunning(): boolean;
  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves once it exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

const running = new Set<Proc>();

/** Processes we did not fork ourselves (nginx's worker): pid and start time, to reap them too. */
const adopted = new Map<number, { name: string; startTime: string }>();

/** Tracks a child process: reaped by reapAll(), SIGKILLed if the benchmark exits first. */
export function track(name: string, child: ChildProcess): Proc {
  if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (err) => resolve(String(err)));
  });
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  const proc: Proc = {
    name,
    child,
    pid: child.pid,
    output: () => output,
    exited,
    isRunning,
    stop: async (signal = 'SIGTERM', graceMs = 10_000) => {
      if (isRunning()) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<'timeout'>(
        (r) => (timer = setTimeout(() => r('timeout'), graceMs)),
      );
      if ((await Promise.race([exited, grace])) === 'timeout' && isRunning()) child.kill('SIGKILL');
      clearTimeout(timer);
      return exited;
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

/** Field 22 of /proc/<pid>/stat (start time in ticks), or null once the process is gone. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** True while `pid` is still the process adopt() saw (not a zombie, not a reused pid). */
function adoptedAlive(pid: number, startTime: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && fields[19] === startTime;
  } catch {
    return false;
  }
}

/**
 * Tracks a process forked by one of ours (nginx's worker, forked by its master): if it outlives
 * its parent's stop, reapAll() and the exit hook SIGKILL it.
 */
export function adopt(name: string, pid: number): void {
  const startTime = startTimeOf(pid);
  if (startTime !== null) adopted.set(pid, { name, startTime });
}

/** SIGKILLs the adopted processes still alive and forgets them. */
function killAdopted(): void {
  for (const [pid, { startTime }] of adopted) {
    if (adoptedAlive(pid, startTime)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  adopted.clear();
}

/** Waits up to `graceMs` for the adopted processes to end, then SIGKILLs the rest. */
export async function reapAdopted(graceMs = 3_000): Promise<void> {
  const deadline = Date.now() + graceMs;
  while ([...adopted].some(([pid, a]) => adoptedAlive(pid, a.startTime)) && Date.now() < deadline) {
    await sleep(50);
  }
  killAdopted();
}

/** Stops every process still running (SIGTERM, SIGKILL after the grace period). */
export async function reapAll(graceMs = 5_000): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGTERM', graceMs)));
  await reapAdopted(graceMs);
}

// Never leave a child behind, whatever way this process ends.
process.once('exit', () => {
  for (const p of running) if (p.isRunning()) p.child.kill('SIGKILL');
  killAdopted();
});

/** The pids of a process's children (/proc/<pid>/task/<pid>/children). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const PORT_TAKEN = /EADDRINUSE|Address already in use/;

/**
 * Starts a server on a port free a moment ago; when something else took it in between (other
 * processes on the machine open connections from the same range), tries again on another.
 */
async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      if (attempt >= attempts || !PORT_TAKEN.test(String(err))) throw err;
    }
  }
}

export interface SpawnedRedis {
  proc: Proc;
  url: string;
}

/** redis-server on a free loopback port, persistence off; resolves once it answers PING. */
export function spawnRedis(name: string): Promise<SpawnedRedis> {
  return onFreePort((port) => startRedis(name, port));
}

async function startRedis(name: string, port: number): Promise<SpawnedRedis> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const proc = track(name, child);
  const deadline = Date.now() + 10_000;
  while (!(await answersPing(port))) {
    if (!proc.isRunning()) {
      const why = await proc.exited;
      throw new Error(`${name} exited (${why}); is redis-server installed?\n${proc.output()}`);
    }
    if (Date.now() > deadline) throw new Error(`${name} did not answer PING:\n${proc.output()}`);
    await sleep(20);
  }
  return { proc, url: `redis://127.0.0.1:${port}` };
}

export interface SpawnedRole {
  proc: Proc;
  port: number;
  url: string;
}

/**
 * `node [nodeArgs] dist/bin/<role>.js` on a free port, with exactly `env` (plus PATH, PORT,
 * HOST); resolves once its /ready answers 200.
 */
export function spawnRole(
  name: string,
  role: 'gateway' | 'worker',
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<SpawnedRole> {
  return onFreePort((port) => startRole(name, role, env, nodeArgs, port));
}

async function startRole(
  name: string,
  role: 'gateway' | 'worker',
  env: Record<string, string>,
  nodeArgs: string[],
  port: number,
): Promise<SpawnedRole> {
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist/bin', `${role}.js`)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track(name, child);
  const url = `http://127.0.0.1:${port}`;
  await waitUntilAnswered(proc, `${url}/ready`, (status) => status === 200);
  return { proc, port, url };
}

/** Polls `url` until `ready(status)` holds; throws when the process exits or after 20 s. */
async function waitUntilAnswered(
  proc: Proc,
  url: string,
  ready: (status: number) => boolean,
): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!proc.isRunning()) {
      // Its last words (EADDRINUSE, a config error) may still be in the pipe.
      await Promise.race([new Promise((r) => proc.child.once('close', r)), sleep(200)]);
      throw new Error(`${proc.name} exited before ready:\n${proc.output()}`);
    }
    if (ready(await httpStatus(url))) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} not ready in 20 s:\n${proc.output()}`);
    await sleep(50);
  }
}

/** Where the installed @modelcontextprotocol/sdk lives (its exports name no example path). */
function sdkRoot(): string {
  // <root>/dist/cjs/server/index.js
  return path.resolve(
    path.dirname(require.resolve('@modelcontextprotocol/sdk/server')),
    '../../..',
  );
}

/** One of the example servers the installed SDK ships (dist/cjs/examples/server/). */
export function sdkExampleServer(file: string): string {
  return path.join(sdkRoot(), 'dist/cjs/examples/server', file);
}

/** The installed SDK's version. */
export function sdkVersion(): string {
  const pkg = path.join(sdkRoot(), 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

/**
 * The SDK's reference Streamable HTTP server (examples/server/simpleStreamableHttp.js: sessions,
 * an in-memory event store) on a free port, which it takes from MCP_PORT; resolves once its
 * /mcp answers (400 to a GET without a session).
 */
export function spawnSdkServer(name: string, nodeArgs: string[] = []): Promise<SpawnedRole> {
  return onFreePort((port) => startSdkServer(name, nodeArgs, port));
}

async function startSdkServer(
  name: string,
  nodeArgs: string[],
  port: number,
): Promise<SpawnedRole> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, sdkExampleServer('simpleStreamableHttp.js')],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', MCP_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const proc = track(name, child);
  const url = `http://127.0.0.1:${port}`;
  await waitUntilAnswered(proc, `${url}/mcp`, (status) => status >= 400 && status < 500);
  return { proc, port, url };
}

/**
 * A forked Node script with an IPC channel (the load generators); `env`, when given, is its
 * whole environment besides PATH (the publishers' Redis settings).
 */
export function forkScript(
  name: string,
  script: string,
  args: string[] = [],
  env?: Record<string, string>,
): Proc {
  return track(
    name,
    fork(script, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      ...(env ? { env: { PATH: process.env.PATH ?? '', ...env } } : {}),
    }),
  );
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.setTimeout(2000, () => req.destroy());
    req.once('error', () => resolve(0));
  });
}

/** The status of a GET (0 when it failed): readiness probes. */
export { httpStatus };

/** GET a URL's body as text (the Prometheus scrape). */
export function httpText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.once('error', reject);
  });
}

let clockTicks: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat's times (getconf CLK_TCK; 100 on Linux). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Clock tick length in µs: the resolution of cpuTimes(). */
export function cpuTickMicros(): number {
  return 1e6 / ticksPerSecond();
}

/**
 * User and system CPU time of a process (all its threads) so far, in µs, from /proc/<pid>/stat
 * (in clock ticks: 10 ms resolution with CLK_TCK 100).
 */
export function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "pid (comm) ": the 3rd field of the line is the first here; utime is the 14th
  // and stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const tick = cpuTickMicros();
  return { user: Number(fields[11]) * tick, system: Number(fields[12]) * tick };
}

/**
 * CPU time of the whole machine so far, in µs summed over its cores, from /proc/stat's `cpu`
 * line: `busy` (every state but idle and iowait) and `total`. Over a window, busy / total is how
 * busy the cores were, whoever used them (other work on the machine included).
 */
export function machineCpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  // user nice system idle iowait irq softirq steal
  const idle = ticks[3] + ticks[4];
  const tick = cpuTickMicros();
  return { busy: (total - idle) * tick, total: total * tick };
}

/** Resident set size of a process in KB, from /proc/<pid>/status (VmRSS). */
export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** The soft limit on open files of this process (children inherit it). */
export function openFilesLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  return !match || match[1] === 'unlimited' ? Infinity : Number(match[1]);
}

/** `redis-server --version`'s version, for the report. */
export function redisVersion(): string {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8' });
    return /v=(\S+)/.exec(out)?.[1] ?? out.trim();
  } catch {
    return 'unknown';
  }
}

/** A JWT from the project's own `npm run token` script (dist/bin/token.js). */
export function issueToken(secret: string, type: string, sub: string): string {
  return execFileSync(
    process.execPath,
    [path.join(ROOT, 'dist/bin/token.js'), '--type', type, '--sub', sub, '--ttl', '1h'],
    { env: { PATH: process.env.PATH ?? '', JWT_SECRET: secret }, encoding: 'utf8' },
  ).trim();
}
