/** `npm run gateway`: one gateway pod (needs REDIS_URL so that workers and other pods share it). */
import { createGatewayApp } from '../gateway/app';
import { createAccessTokenVerifier } from '../shared/oauth';
import { runProcess } from './lifecycle';
import { backlogCapWarning, closeServer, listen } from './serve';

runProcess('gateway', async ({ config, engine, logger, metrics }) => {
  const verifier = createAccessTokenVerifier(config, logger);
  const gateway = createGatewayApp({ config, engine, logger, metrics, verifier });
  await gateway.start();
  const { server, port } = await listen(
    gateway.app,
    config.port,
    config.host,
    config.requestTimeoutMs,
    config.listenBacklog,
  );
  logger.info('Gateway started', { port, engine: engine.kind, backlog: config.listenBacklog });
  const capped = backlogCapWarning(config.listenBacklog);
  if (capped) logger.warn(capped);

  // SIGTERM: /ready 503 and new streams refused at once, open streams told `draining` and
  // closed over DRAIN_WINDOW_MS (their clients resume on other pods), then Redis quit.
  return async () => {
    await gateway.drain();
    await gateway.close();
    await closeServer(server);
  };
});
