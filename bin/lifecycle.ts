import { loadConfig, type Config } from '../shared/config';
import { createEngine, type Engine } from '../shared/engine';
import { createLogger, type Logger } from '../shared/logger';
import { createMetrics, type Metrics } from '../shared/metrics';

export type Role = 'gateway' | 'worker' | 'all';

export interface ProcessContext {
  config: Readonly<Config>;
  logger: Logger;
  metrics: Metrics;
  /** Started before `run` is called; closed after its shutdown function. */
  engine: Engine;
}

/**
 * The life of one process: parse the config, make the logger, metrics and engine, run the
 * role's `run` (which starts its parts and returns how to stop them), and on SIGTERM/SIGINT
 * stop them, then close the engine (Redis quit last) and exit 0. Startup failures exit 1.
 */
export function runProcess(
  role: Role,
  run: (context: ProcessContext) => Promise<() => Promise<void>>,
): void {
  let logger: Logger | undefined;
  (async () => {
    const config = loadConfig();
    logger = createLogger(config.logLevel, { role, podId: config.podId });
    checkRoleConfig(role, config);
    const metrics = createMetrics(role);
    const engine = createEngine(config, logger, metrics);
    await engine.start();
    const stop = await run({ config, logger, metrics, engine });
    onShutdownSignal(logger, async () => {
      await stop();
      await engine.close();
    });
  })().catch((err: unknown) => exitOnStartupError(logger, err));
}

/** What a role cannot start without; checked before anything connects. */
function checkRoleConfig(role: Role, config: Readonly<Config>): void {
  if (role !== 'all' && !config.redis) {
    throw new Error(
      `a ${role} process needs Redis: REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS (npm start runs one process)`,
    );
  }
  // npm start makes a secret for its run (bin/start.ts); pods must all verify the same tokens.
  if (role === 'gateway' && !config.jwtSecret && !config.jwtPublicKey && !config.oauth) {
    throw new Error(
      'JWT_SECRET, JWT_PUBLIC_KEY or OAUTH_ISSUER is required: every pod must verify the same tokens',
    );
  }
}

/**
 * Runs `shutdown` once on SIGTERM/SIGINT, then exits 0 (1 if shutdown failed).
 * A second signal while shutting down exits at once.
 */
function onShutdownSignal(logger: Logger, shutdown: (signal: string) => Promise<void>): void {
  let shuttingDown = false;
  const handle = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      logger.warn('Second signal during shutdown, exiting now', { signal });
      process.exit(1);
    }
    shuttingDown = true;
    logger.info('Shutting down', { signal });
    shutdown(signal).then(
      () => {
        logger.info('Shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error('Shutdown failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
  process.on('unhandledRejection', (reason) => {
    logger.error('Unhandled rejection', { error: String(reason) });
  });
}

/** Logs a startup failure and exits non-zero. */
function exitOnStartupError(logger: Logger | undefined, err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  if (logger) logger.error('Startup failed', { error: message });
  else console.error(`Startup failed: ${message}`);
  process.exit(1);
}
