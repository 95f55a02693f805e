import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * A redis-server (or sentinel) process started by a test helper: its port, the tail of its
 * output (for error messages) and a promise of its exit. Every such process is killed when the
 * test process exits, whatever the helper did.
 */
export interface RedisProcess {
  port: number;
  child: ChildProcess;
  /** The last 4,000 characters it printed. */
  output: string;
  exited: Promise<void>;
  /** Why it stopped, once it has (a spawn error, or its exit with its output). */
  failure(): Error | undefined;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

export function spawnRedisProcess(
  command: string,
  args: string[],
  port: number,
  options: SpawnOptions = {},
): RedisProcess {
  installExitHook();
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let failure: Error | undefined;
  const proc: RedisProcess = {
    port,
    child,
    output: '',
    exited: Promise.resolve(),
    failure: () => failure,
  };
  const collect = (chunk: Buffer) => {
    proc.output = (proc.output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  liveChildren.add(child);
  proc.exited = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      failure = error;
      liveChildren.delete(child);
      resolve();
    });
    child.once('exit', (code, signal) => {
      failure ??= new Error(
        `${command} on port ${port} exited (${code ?? signal}):\n${proc.output}`,
      );
      liveChildren.delete(child);
      resolve();
    });
  });
  return proc;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
export async function stopProcess(
  child: ChildProcess,
  exited: Promise<unknown>,
  graceMs: number,
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    if ((await Promise.race([exited, grace])) === 'timeout') child.kill('SIGKILL');
    clearTimeout(timer);
  }
  await exited;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of liveChildren) child.kill('SIGKILL');
  });
}
