import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../devSupport/ports';

const ROOT = path.resolve(__dirname, '../..');

export type Role = 'gateway' | 'worker' | 'start';

/** A gateway, worker or all-in-one process spawned from the compiled dist/. */
export interface SpawnedProcess {
  role: Role;
  port: number;
  url: string;
  child: ChildProcess;
  /** Everything it printed (stdout and stderr), for assertions and failure messages. */
  output(): string;
  /** Resolves with the exit code (or signal name) once it exited. */
  exited: Promise<number | string>;
  /** Sends the signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

const running = new Set<SpawnedProcess>();

/**
 * Spawns `node dist/bin/<role>.js` on a free port and waits until its /ready answers 200
 * (or it exits, which fails with its output). Every process is reaped by reapAll().
 */
export async function spawnRole(
  role: Role,
  env: Record<string, string>,
  options: { port?: number; waitReady?: boolean; readyTimeoutMs?: number } = {},
): Promise<SpawnedProcess> {
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/bin', `${role}.js`)], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      LOG_LEVEL: 'warn',
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const proc: SpawnedProcess = {
    role,
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    output: () => output,
    exited,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  if (options.waitReady !== false) await waitReady(proc, options.readyTimeoutMs ?? 20_000);
  return proc;
}

async function waitReady(proc: SpawnedProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let done = false;
  void proc.exited.then(() => (done = true));
  while (Date.now() < deadline) {
    if (done) throw new Error(`${proc.role} exited before ready:\n${proc.output()}`);
    try {
      const res = await fetch(`${proc.url}/ready`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await proc.kill('SIGKILL');
  throw new Error(`${proc.role} not ready within ${timeoutMs} ms:\n${proc.output()}`);
}

/** The status of its GET /ready (0: no answer, e.g. not listening). */
export async function readyStatus(proc: SpawnedProcess): Promise<number> {
  try {
    return (await fetch(`${proc.url}/ready`)).status;
  } catch {
    return 0;
  }
}

/** Kills every process still running (SIGKILL) and waits for them. */
export async function reapAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill('SIGKILL')));
}

// Never leave children behind, even when a test file crashes.
process.once('exit', () => {
  for (const p of running) p.child.kill('SIGKILL');
});
