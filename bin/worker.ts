/** `npm run worker`: consumes commands from Redis; serves /health, /ready and /metrics on PORT. */
import { createWorkerHttpApp } from '../worker/httpServer';
import { loadServerModule } from '../worker/server/serverModule';
import { createWorker } from '../worker/worker';
import { runProcess } from './lifecycle';
import { closeServer, listen } from './serve';

runProcess('worker', async ({ config, engine, logger, metrics }) => {
  // MCP_SERVER_MODULE: a bad module stops the process here, before any command is taken.
  const createMcpServer = config.mcpServerModule
    ? await loadServerModule(config.mcpServerModule)
    : undefined;
  const worker = createWorker({ config, engine, logger, metrics, createMcpServer });
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
