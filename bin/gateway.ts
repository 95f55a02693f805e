/** `npm run gateway`: one gateway pod (needs REDIS_URL so that workers and other pods share it). */
import { createGatewayApp } from '../gateway/app';
import { createTokenVerifier } from '../shared/auth';
import { loadConfig } from '../shared/config';
import { createEngine } from '../shared/engine';
import { createLogger, type Logger } from '../shared/logger';
import { createMetrics } from '../shared/metrics';
import { exitOnStartupError, onShutdownSignal } from './lifecycle';
import { closeServer, listen } from './serve';

async function main(): Promise<void> {
  let logger: Logger | undefined;
  try {
    const config = loadConfig();
    logger = createLogger(config.logLevel, { role: 'gateway', podId: config.podId });
    if (!config.redisUrl)
      throw new Error(
        'REDIS_URL is required for a gateway process (use npm start for one process)',
      );
    if (config.jwtSecretGenerated)
      throw new Error(
        'JWT_SECRET or JWT_PUBLIC_KEY is required: every pod must verify the same tokens',
      );
    const metrics = createMetrics('gateway');
    const engine = createEngine(config, logger, metrics);
    await engine.start();
    const gateway = createGatewayApp({
      config,
      engine,
      logger,
      metrics,
      verifier: createTokenVerifier(config),
    });
    await gateway.start();
    const { server, port } = await listen(gateway.app, config.port, config.host);
    logger.info('Gateway started', { port, engine: engine.kind });

    onShutdownSignal(logger, async () => {
      await gateway.close();
      await closeServer(server);
      await engine.close();
    });
  } catch (err) {
    exitOnStartupError(logger, err);
  }
}

void main();
