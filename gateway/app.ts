import express from 'express';
import type { AccessTokenVerifier } from '../shared/auth';
import { PLACEHOLDER_JWT_SECRETS, type Config } from '../shared/config';
import type { Engine } from '../shared/engine/engine';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import { createMcpTransports } from './mcpTransports';
import { OriginPolicy, cors } from './middleware/cors';
import { errorHandler, notFound } from './middleware/errorHandler';
import { createRateLimiter } from './middleware/rateLimit';
import { requestMetrics } from './middleware/requestMetrics';
import { broadcastRoutes } from './routes/broadcast';
import { demoRoutes } from './routes/demo';
import type { RouteContext } from './routes/context';
import { healthRoutes } from './routes/health';
import { ProtectedResource } from './routes/protectedResource';
import { sendRoutes } from './routes/send';
import { sseRoutes } from './routes/sse';
import { statsRoutes } from './routes/stats';
import { DrainState } from './drainState';
import { HotRoutes, type HttpListener } from './hotRoutes';
import { answerLostCommands } from './lostCommands';
import { ConnectionHub } from './seed/hub';
import { setSseBatchWindow } from './sse/writer';
import { setCompression } from './sse/compression';

export interface GatewayDeps {
  config: Config;
  engine: Engine;
  logger: Logger;
  metrics: Metrics;
  verifier: AccessTokenVerifier;
}

export interface GatewayApp {
  /**
   * Listen on it (or mount it); the factory never listens. The per-call routes are served before
   * Express's router (see hotRoutes.ts), everything else by the Express app.
   */
  app: HttpListener;
  hub: ConnectionHub;
  /** Draining: /ready answers 503 and every transport refuses new streams. */
  drainState: DrainState;
  /** Subscribes the hub to the broadcast topics and starts its timers (the engine must be started). */
  start(): Promise<void>;
  /**
   * SIGTERM: refuses new streams, ends the MCP session streams (GET /mcp, /sse) at once and
   * drains the seed streams over DRAIN_WINDOW_MS; their clients reconnect to other pods.
   */
  drain(): Promise<void>;
  /** Closes every SSE stream, stops the timers and unregisters the connections. Idempotent. */
  close(): Promise<void>;
}

/** The gateway's HTTP app: the seed API (`/mcp/sse*`), probes and metrics. */
export function createGatewayApp(deps: GatewayDeps): GatewayApp {
  const { config, engine, metrics, verifier } = deps;
  const logger = deps.logger.child({ component: 'gateway' });
  // Draining is the app's state: every transport's routes and the seed hub read it.
  const drain = new DrainState();
  setSseBatchWindow(config.sseBatchMs);
  setCompression(config.sseCompression);
  const hub = new ConnectionHub({ config, engine, logger, metrics, drain });
  answerLostCommands({ config, engine, logger, metrics });
  const resource = config.oauth ? new ProtectedResource(config.oauth) : undefined;
  const hotRoutes = new HotRoutes();
  const ctx: RouteContext = {
    config,
    engine,
    logger,
    metrics,
    hub,
    drain,
    verifier,
    rateLimit: createRateLimiter(config, engine),
    hotRoutes,
    ...(resource ? { resource } : {}),
  };

  if (config.jwtSecret !== undefined && PLACEHOLDER_JWT_SECRETS.includes(config.jwtSecret)) {
    logger.error(
      'JWT_SECRET is a placeholder published in this repository: anyone can sign tokens for this gateway. Set your own secret (openssl rand -hex 32)',
    );
  }
  if (config.allowedOrigins.includes('*')) {
    logger.warn(
      'ALLOWED_ORIGINS=*: any web page may call this gateway with a token it holds; list your origins instead',
    );
  }

  let closed = false;
  // mcpgw_ready, read on scrape: what /ready answers.
  metrics.addReadinessCheck(() => !closed && !drain.active && engine.isReady());

  const app = express();
  app.disable('x-powered-by');
  // No route needs a body hash computed per answer (GET /demo sets its own, computed once).
  app.set('etag', false);
  // Behind a load balancer the socket's address is the balancer's: TRUST_PROXY names it.
  app.set('trust proxy', config.trustProxy);
  // Metrics first: requests the origin policy refuses are counted too.
  const metered = requestMetrics(metrics, logger);
  app.use(metered);
  // Public metadata any web client may read: before the origin policy. Its GET/OPTIONS paths are
  // no hot route's, so the hot routes skip it.
  if (resource) app.use(resource.routes());
  const originChecked = cors(new OriginPolicy(config));
  app.use(originChecked);
  // The per-call routes first (POST /mcp/sse/send, POST /mcp): each router passed costs every
  // request that goes by it. The paths are distinct, so the order decides nothing else.
  app.use(sendRoutes(ctx));
  const mcpTransports = createMcpTransports(ctx);
  app.use(mcpTransports.router);
  app.use(healthRoutes(ctx));
  app.use(sseRoutes(ctx));
  app.use(broadcastRoutes(ctx));
  app.use(statsRoutes(ctx));
  app.use(demoRoutes(logger));
  const unrouted = notFound();
  const answerError = errorHandler(logger, config.maxBodyBytes);
  app.use(unrouted);
  app.use(answerError);
  hotRoutes.frame([metered, originChecked], unrouted, [answerError]);

  return {
    app: hotRoutes.listener(app),
    hub,
    drainState: drain,
    start: async () => {
      await hub.start();
      await mcpTransports.start();
    },
    drain: async () => {
      drain.start();
      await Promise.all([mcpTransports.drain(), hub.drain()]);
    },
    close: async () => {
      closed = true;
      await mcpTransports.close();
      await hub.close();
    },
  };
}
