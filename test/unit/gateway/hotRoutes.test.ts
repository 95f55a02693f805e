/**
 * HotRoutes: a declared method+path is served before Express's router with the same handlers,
 * the app's front middleware and error handlers in Express's order; anything else goes to Express.
 */
import type http from 'node:http';
import express, {
  Router,
  type ErrorRequestHandler,
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import { closeServer, listen } from '../../../bin/serve';
import { HotRoutes } from '../../../gateway/hotRoutes';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function call(
  port: number,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    ...(body === undefined
      ? { headers }
      : { body, headers: { 'content-type': 'application/json', ...headers } }),
  });
  return {
    status: res.status,
    headers: Object.fromEntries(res.headers.entries()),
    body: method === 'HEAD' ? '' : await res.text(),
  };
}

describe('HotRoutes', () => {
  let server: http.Server;
  let port: number;
  /** Which layers each request went through, in order. */
  const trail: string[] = [];

  beforeAll(async () => {
    const hot = new HotRoutes();
    const app = express();
    const front: RequestHandler = (req, res, next) => {
      trail.push(`front ${req.method} ${req.path}`);
      res.setHeader('X-Front', '1');
      if (req.get('x-refuse-front') !== undefined) return next(new Error('front refused'));
      next();
    };
    // Only Express's router passes here: the hot routes must not.
    const routerOnly: RequestHandler = (_req, res, next) => {
      res.setHeader('X-Router', '1');
      next();
    };
    const label: RequestHandler = (req, res, next) => {
      res.on('finish', () => trail.push(`label ${(req.route as { path: string }).path}`));
      next();
    };
    const router = Router();
    const guard: RequestHandler = (req, _res, next) =>
      next(req.get('x-refuse') !== undefined ? new Error('refused') : undefined);
    hot.post(
      router,
      '/hot',
      [
        label,
        guard,
        express.json(),
        async (req: Request, res: Response) => {
          await Promise.resolve();
          if ((req.body as { fail?: boolean }).fail) throw new Error('handler failed');
          // Express's request and response API, and its app, are there.
          res.status(201).json({ got: req.body as unknown, app: req.app === app });
        },
      ],
      [
        (err: Error, _req: Request, res: Response, next: NextFunction) => {
          res.setHeader('X-Route-Error', err.message);
          next(err);
        },
      ],
    );
    const appError: ErrorRequestHandler = (err: Error, _req, res, _next) => {
      res.status(418).json({ error: err.message });
    };
    const notFound: RequestHandler = (_req, res) => {
      res.status(404).json({ error: 'none' });
    };
    app.use(front);
    app.use(routerOnly);
    app.use(router);
    app.use(notFound);
    app.use(appError);
    hot.frame([front], notFound, [appError]);
    ({ server, port } = await listen(hot.listener(app), 0, '127.0.0.1', 5000));
  });

  afterAll(() => closeServer(server));
  beforeEach(() => {
    trail.length = 0;
  });

  it('serves a hot route without Express router, front middleware and handlers in order', async () => {
    const answer = await call(port, 'POST', '/hot?x=1', '{"a":1}');
    expect(answer.status).toBe(201);
    expect(JSON.parse(answer.body)).toEqual({ got: { a: 1 }, app: true });
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(answer.headers['x-front']).toBe('1');
    expect(answer.headers['x-router']).toBeUndefined();
    expect(trail).toEqual(['front POST /hot', 'label /hot']);
  });

  it("passes the route's errors to its error handlers, then the app's", async () => {
    const refused = await call(port, 'POST', '/hot', '{}', { 'x-refuse': '1' });
    expect(refused.status).toBe(418);
    expect(JSON.parse(refused.body)).toEqual({ error: 'refused' });
    expect(refused.headers['x-route-error']).toBe('refused');
    const failed = await call(port, 'POST', '/hot', '{"fail":true}');
    expect(failed.status).toBe(418);
    expect(JSON.parse(failed.body)).toEqual({ error: 'handler failed' });
    expect(failed.headers['x-route-error']).toBe('handler failed');
  });

  it("sends the front middleware's errors to the app's handlers only", async () => {
    const answer = await call(port, 'POST', '/hot', '{}', { 'x-refuse-front': '1' });
    expect(answer.status).toBe(418);
    expect(JSON.parse(answer.body)).toEqual({ error: 'front refused' });
    expect(answer.headers['x-route-error']).toBeUndefined();
    expect(trail).toEqual(['front POST /hot']);
  });

  it('hands every other request to Express, which serves the same route as before', async () => {
    const slash = await call(port, 'POST', '/hot/', '{"b":2}');
    expect(slash.status).toBe(201);
    expect(JSON.parse(slash.body)).toEqual({ got: { b: 2 }, app: true });
    expect(slash.headers['x-router']).toBe('1');
    const other = await call(port, 'GET', '/hot');
    expect(other.status).toBe(404);
    expect(other.headers['x-router']).toBe('1');
  });
});
