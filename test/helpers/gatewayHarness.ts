import type http from 'node:http';
import { listen } from '../../bin/serve';
import { createGatewayApp, type GatewayApp } from '../../gateway/app';
import { issueToken, type IssueOptions } from '../../shared/auth';
import { loadConfig, type Config } from '../../shared/config';
import type { Engine } from '../../shared/engine/engine';
import { MemoryEngine } from '../../shared/engine/memory';
import { silentLogger, type Logger } from '../../shared/logger';
import { createMetrics, type Metrics } from '../../shared/metrics';
import { createAccessTokenVerifier } from '../../shared/oauth';
import type { TokenType } from '../../shared/types';
import { createWorker, type Worker, type WorkerDeps } from '../../worker/worker';

export const TEST_JWT_SECRET = 'gateway-test-secret-0123456789abcdef';

export interface GatewayHarnessOptions {
  /** Environment overrides, as strings (HEARTBEAT_INTERVAL_MS, MAX_BODY_BYTES, ...). */
  env?: Record<string, string>;
  /** An engine to use (started by the caller); default: a fresh MemoryEngine, closed by close(). */
  engine?: Engine;
  /** Default: a silent logger. */
  logger?: Logger;
}

export interface GatewayHarness {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  url: string;
  config: Readonly<Config>;
  engine: Engine;
  metrics: Metrics;
  gateway: GatewayApp;
  server: http.Server;
  /** One ready token per type, subs `master-1`, `team-1`, `readonly-1`, valid for an hour. */
  tokens: Record<TokenType, string>;
  /** Signs another token with the harness secret. */
  token(options: IssueOptions): string;
  /** Closes the gateway (every stream), the server and the engine when the harness made it. */
  close(): Promise<void>;
}

/**
 * A gateway on a free port of 127.0.0.1 over the memory engine (or a given one), for HTTP-level
 * tests with real clients.
 */
export async function startGateway(options: GatewayHarnessOptions = {}): Promise<GatewayHarness> {
  const config = loadConfig({
    JWT_SECRET: TEST_JWT_SECRET,
    POD_ID: 'gateway-test',
    LOG_LEVEL: 'error',
    // Closed connections leave the registry at once unless a test opts into a resume window.
    RESUME_GRACE_MS: '0',
    ...options.env,
  });
  const ownEngine = !options.engine;
  const engine =
    options.engine ??
    new MemoryEngine({
      historyMaxLen: config.historyMaxLen,
      historyTtlS: config.historyTtlS,
      historyMaxBytes: config.historyMaxBytes,
      eventMaxBytes: config.eventMaxBytes,
    });
  if (ownEngine) await engine.start();
  const metrics = createMetrics('gateway');
  const logger = options.logger ?? silentLogger();
  const gateway = createGatewayApp({
    config,
    engine,
    logger,
    metrics,
    verifier: createAccessTokenVerifier(config, logger),
  });
  await gateway.start();

  // The production server settings (request timeouts) on a free port of 127.0.0.1.
  const { server, port } = await listen(gateway.app, 0, '127.0.0.1', config.requestTimeoutMs);

  const token = (opts: IssueOptions) => issueToken(TEST_JWT_SECRET, opts);
  const tokens = {
    master: token({ type: 'master', sub: 'master-1', ttl: '1h' }),
    team: token({ type: 'team', sub: 'team-1', ttl: '1h' }),
    readonly: token({ type: 'readonly', sub: 'readonly-1', ttl: '1h' }),
  };

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await gateway.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownEngine) await engine.close();
    })());

  return {
    url: `http://127.0.0.1:${port}`,
    config,
    engine,
    metrics,
    gateway,
    server,
    tokens,
    token,
    close,
  };
}

/** A gateway and a worker on one memory engine: the whole product in this process. */
export interface GatewayWithWorker {
  engine: MemoryEngine;
  gateway: GatewayHarness;
  worker: Worker;
  /** Stops both and closes the engine. */
  close(): Promise<void>;
}

export async function startGatewayWithWorker(
  options: Pick<GatewayHarnessOptions, 'env'> & Pick<WorkerDeps, 'createMcpServer'> = {},
): Promise<GatewayWithWorker> {
  const engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
  await engine.start();
  const gateway = await startGateway({ engine, env: options.env });
  const worker = createWorker({
    config: gateway.config,
    engine,
    logger: silentLogger(),
    metrics: createMetrics('worker'),
    createMcpServer: options.createMcpServer,
  });
  await worker.start();
  return {
    engine,
    gateway,
    worker,
    async close() {
      await gateway.close();
      await worker.stop();
      await engine.close();
    },
  };
}
