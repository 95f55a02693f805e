/** `npm run worker`: consumes commands from Redis; serves /health, /ready and /metrics on PORT. */
import { createWorkerHttpApp } from '../worker/httpServer';
import { createWorker } from '../worker/worker';
import { runProcess } from './lifecycle';
import { closeServer, listen } from './serve';

runProcess('worker', async ({ config, engine, logger, metrics }) => {
  const worker = createWorker({ config, engine, logger, metrics });
  await worker.start();
  const http = createWorkerHttpApp({ engine, metrics, worker });
  const { server, port } = await listen(http, config.port, config.host, config.requestTimeoutMs);
  const { workerConcurrency: concurrency } = config;
  logger.info('Worker started', { port, engine: engine.kind, concurrency });

  // SIGTERM: stop reading, finish and ack the commands in hand, then Redis quit.
  return async () => {
    await worker.stop();
    await closeServer(server);
  };
});
