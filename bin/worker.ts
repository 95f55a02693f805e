/** `npm run worker`: consumes commands from Redis; serves /health, /ready and /metrics on PORT. */
import { loadConfig } from '../shared/config';
import { createEngine } from '../shared/engine';
import { createLogger, type Logger } from '../shared/logger';
import { createMetrics } from '../shared/metrics';
import { createWorkerHttpApp } from '../worker/httpServer';
import { createWorker } from '../worker/worker';
import { exitOnStartupError, onShutdownSignal } from './lifecycle';
import { closeServer, listen } from './serve';

async function main(): Promise<void> {
  let logger: Logger | undefined;
  try {
    const config = loadConfig();
    logger = createLogger(config.logLevel, { role: 'worker', podId: config.podId });
    if (!config.redisUrl)
      throw new Error('REDIS_URL is required for a worker process (use npm start for one process)');
    const metrics = createMetrics('worker');
    const engine = createEngine(config, logger, metrics);
    await engine.start();
    const worker = createWorker({ config, engine, logger, metrics });
    await worker.start();
    const { server, port } = await listen(
      createWorkerHttpApp({ engine, metrics, worker }),
      config.port,
      config.host,
    );
    logger.info('Worker started', {
      port,
      engine: engine.kind,
      concurrency: config.workerConcurrency,
    });

    onShutdownSignal(logger, async () => {
      await worker.stop();
      await closeServer(server);
      await engine.close();
    });
  } catch (err) {
    exitOnStartupError(logger, err);
  }
}

void main();
