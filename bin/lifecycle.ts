import type { Logger } from '../shared/logger';

/**
 * Runs `shutdown` once on SIGTERM/SIGINT, then exits 0 (1 if shutdown failed).
 * A second signal while shutting down exits at once.
 */
export function onShutdownSignal(
  logger: Logger,
  shutdown: (signal: string) => Promise<void>,
): void {
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
export function exitOnStartupError(logger: Logger | undefined, err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  if (logger) logger.error('Startup failed', { error: message });
  else console.error(`Startup failed: ${message}`);
  process.exit(1);
}
