/**
 * `npm start`: gateway and worker in one process. Memory engine unless REDIS_URL is set.
 * Without JWT_SECRET or JWT_PUBLIC_KEY a random secret is made for the run and ready-to-paste
 * tokens are printed.
 */
import { randomBytes } from 'node:crypto';
import { createGatewayApp } from '../gateway/app';
import { issueToken } from '../shared/auth';
import { loadServerModule } from '../worker/server/serverModule';
import { createWorker } from '../worker/worker';
import { createAccessTokenVerifier } from '../shared/oauth';
import { runProcess } from './lifecycle';
import { closeServer, listen } from './serve';

runProcess('all', async ({ config: parsed, engine, logger, metrics }) => {
  // No static key: a secret for this run, which signs the printed tokens (the config has none).
  const generatedSecret =
    parsed.jwtSecret || parsed.jwtPublicKey ? undefined : randomBytes(32).toString('hex');
  const config = generatedSecret
    ? Object.freeze({ ...parsed, jwtSecret: generatedSecret })
    : parsed;
  const worker = createWorker({
    config,
    engine,
    logger: logger.child({ component: 'worker' }),
    metrics,
    // MCP_SERVER_MODULE: a bad module stops the process here, before it listens.
    createMcpServer: config.mcpServerModule
      ? await loadServerModule(config.mcpServerModule)
      : undefined,
  });
  await worker.start();
  const gateway = createGatewayApp({
    config,
    engine,
    logger: logger.child({ component: 'gateway' }),
    metrics,
    verifier: createAccessTokenVerifier(config, logger),
  });
  await gateway.start();
  const { server, port } = await listen(
    gateway.app,
    config.port,
    config.host,
    config.requestTimeoutMs,
    config.listenBacklog,
  );
  logger.info('Started', { engine: engine.kind, port });
  printBanner(`http://localhost:${port}`, engine.kind, generatedSecret);

  // SIGTERM: drain the streams (see bin/gateway.ts), then let the worker finish its calls.
  return async () => {
    await gateway.drain();
    await gateway.close();
    await closeServer(server);
    await worker.stop();
  };
});

function printBanner(url: string, engine: string, generatedSecret: string | undefined): void {
  const lines = [`MCP event gateway listening on ${url} (engine: ${engine})`];
  if (generatedSecret) {
    lines.push(
      'JWT_SECRET was not set: a random secret was made for this run. Tokens (valid 24h):',
      ...(['master', 'team', 'readonly'] as const).map(
        (type) =>
          `  ${type.padEnd(8)} ${issueToken(generatedSecret, { type, sub: `${type}-local`, ttl: '24h' })}`,
      ),
      `Try: curl -N -H "Authorization: Bearer <team token>" ${url}/mcp/sse`,
    );
  }
  console.log(lines.join('\n'));
}
