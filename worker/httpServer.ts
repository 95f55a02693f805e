import express from 'express';
import type { Engine } from '../shared/engine/engine';
import { errors } from '../shared/errors';
import type { Metrics } from '../shared/metrics';
import type { Worker } from './worker';

export interface WorkerHttpDeps {
  engine: Pick<Engine, 'isReady'>;
  metrics: Pick<Metrics, 'registry'>;
  /** The worker (createWorker's result): /ready answers 503 once it is stopping. */
  worker: Pick<Worker, 'isStopping'>;
}

/**
 * The worker process's HTTP face, for probes and Prometheus only: GET /health (liveness),
 * GET /ready (engine up and not stopping, else 503), GET /metrics. Not listening: the caller
 * does app.listen(config.port).
 */
export function createWorkerHttpApp(deps: WorkerHttpDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/ready', (_req, res) => {
    const reason = deps.worker.isStopping()
      ? 'Worker is stopping'
      : deps.engine.isReady()
        ? undefined
        : 'Engine is not ready';
    if (!reason) {
      res.json({ status: 'ready' });
      return;
    }
    const error = errors.unavailable(reason);
    res.status(error.status).set(error.headers).json(error.toJSON());
  });

  app.get('/metrics', async (_req, res) => {
    const { registry } = deps.metrics;
    res.type(registry.contentType).send(await registry.metrics());
  });

  app.use((_req: express.Request, res: express.Response) => {
    const error = errors.notFound('Not found');
    res.status(error.status).json(error.toJSON());
  });

  return app;
}
