import { IncomingMessage, ServerResponse, type ServerOptions } from 'node:http';
import type {
  ErrorRequestHandler,
  Express,
  NextFunction,
  Request,
  RequestHandler,
  Response,
  Router,
} from 'express';

/**
 * The per-call routes (POST /mcp, POST /mcp/sse/send, ...) served before Express's router.
 * Express walks its layer stack for every request, matching each layer's path and re-entering
 * each nested router, and gives the request and response their prototypes after Node built them.
 * A hot route is one exact method and path: its request gets Express's request and response API
 * (so every handler and guard runs unchanged, the very same functions as on Express's route),
 * passes the middleware the app declared in front of every route, then the route's handlers,
 * and its errors go through the route's error handlers, then the app's, as on Express. Anything
 * else (another method, a trailing slash, other case, OPTIONS preflights, HEAD) goes to the
 * Express app as before.
 */
export class HotRoutes {
  private readonly routes = new Map<string, HotRoute>();
  private before: readonly RequestHandler[] = [];
  private fallthrough: RequestHandler = (_req, _res, next) => next();
  private errorHandlers: readonly ErrorRequestHandler[] = [];

  /**
   * Declares POST `path` on `router` (where Express serves it too, e.g. for a request that
   * reaches the app some other way) and here, with the same handlers. `routeErrors` are the
   * error handlers of `router` that see the route's errors before the app's.
   */
  post(
    router: Router,
    path: string,
    handlers: readonly RequestHandler[],
    routeErrors: readonly ErrorRequestHandler[] = [],
  ): void {
    this.declare('post', router, path, handlers, routeErrors);
  }

  /** GET `path`, as `post` (a HEAD, which Express also routes to it, goes to Express). */
  get(
    router: Router,
    path: string,
    handlers: readonly RequestHandler[],
    routeErrors: readonly ErrorRequestHandler[] = [],
  ): void {
    this.declare('get', router, path, handlers, routeErrors);
  }

  private declare(
    method: 'get' | 'post',
    router: Router,
    path: string,
    handlers: readonly RequestHandler[],
    routeErrors: readonly ErrorRequestHandler[],
  ): void {
    const route = router.route(path);
    route[method](...handlers);
    this.routes.set(`${method.toUpperCase()} ${path}`, {
      route,
      handlers,
      routeErrors,
      errorHandlers: routeErrors,
    });
  }

  /**
   * What the app runs around its routes, in its own order: the middleware every request passes
   * before any route (metrics, origin policy), what answers when a route's handlers all call
   * next() (the app's 404), and the app's error handlers.
   */
  frame(
    before: readonly RequestHandler[],
    fallthrough: RequestHandler,
    errorHandlers: readonly ErrorRequestHandler[],
  ): void {
    this.before = before;
    this.fallthrough = fallthrough;
    this.errorHandlers = errorHandlers;
  }

  /**
   * The app as a request listener: hot routes served here, every other request by `app`. Its
   * `serverOptions` make the server build each request and response as instances of classes
   * that inherit Express's request and response: giving an object another prototype afterwards
   * (what Express does for every request it routes) makes it slow for every later property write.
   */
  listener(app: Express): HttpListener {
    const poweredBy = app.enabled('x-powered-by');
    // Subclasses whose prototype chain holds Express's (measured: ~1 µs to build a request and
    // its response this way, ~12 µs with setPrototypeOf and the property writes after it).
    class GatewayRequest extends IncomingMessage {}
    class GatewayResponse extends ServerResponse {}
    Object.setPrototypeOf(GatewayRequest.prototype, app.request);
    Object.setPrototypeOf(GatewayResponse.prototype, app.response);
    for (const hot of this.routes.values()) {
      hot.errorHandlers = [...hot.routeErrors, ...this.errorHandlers];
    }
    const listener: HttpListener = (req, res, next) => {
      const q = req.url?.indexOf('?') ?? -1;
      const path = q < 0 ? req.url : req.url?.slice(0, q);
      const hot = this.routes.get(`${req.method} ${path}`);
      if (!hot) {
        if (next) app(req as Request, res as Response, next);
        else app(req, res);
        return;
      }
      // What app.handle and the router set on every request before the first layer.
      if (!(req instanceof GatewayRequest)) Object.setPrototypeOf(req, app.request);
      if (!(res instanceof GatewayResponse)) Object.setPrototypeOf(res, app.response);
      const request = req as Request;
      const response = res as Response;
      request.res = response;
      response.req = request;
      if (poweredBy) response.setHeader('X-Powered-By', 'Express');
      if (!response.locals) response.locals = Object.create(null) as Response['locals'];
      request.baseUrl = '';
      request.originalUrl = request.originalUrl || (req.url as string);
      request.params = {};
      this.serve(hot, request, response);
    };
    listener.serverOptions = {
      IncomingMessage: GatewayRequest,
      ServerResponse: GatewayResponse as typeof ServerResponse,
    };
    return listener;
  }

  /** Runs the chain with Express's semantics: next(err) switches to the error handlers. */
  private serve(hot: HotRoute, req: Request, res: Response): void {
    const enter = this.before.length;
    const last = enter + hot.handlers.length;
    let stage = 0;
    let errorStage = 0;
    // Errors of the app-level middleware skip the route's error handlers, as on Express.
    let errorHandlers = this.errorHandlers;
    const next: NextFunction = (err?: unknown) => {
      if (err) return failed(err);
      const at = stage++;
      let handler: RequestHandler;
      if (at < enter) handler = this.before[at];
      else if (at < last) {
        if (at === enter) {
          req.route = hot.route;
          errorHandlers = hot.errorHandlers;
        }
        handler = hot.handlers[at - enter];
      } else if (at === last) {
        errorHandlers = this.errorHandlers;
        handler = this.fallthrough;
      } else return;
      let ret: unknown;
      try {
        ret = handler(req, res, next);
      } catch (err) {
        return next(err);
      }
      if (ret instanceof Promise) rejectedTo(ret, next);
    };
    const failed = (err: unknown): void => {
      const handler = errorHandlers[errorStage++];
      if (!handler) {
        // Nothing answered the error (the app's handler always does): what finalhandler does.
        if (!res.headersSent) res.statusCode = 500;
        res.end();
        return;
      }
      let ret: unknown;
      try {
        ret = handler(err, req, res, (again?: unknown) => (again ? failed(again) : next()));
      } catch (thrown) {
        return failed(thrown);
      }
      if (ret instanceof Promise) rejectedTo(ret, failed);
    };
    req.next = next;
    next();
  }
}

/**
 * A request listener that also mounts as middleware (`next` then goes to the parent app), with
 * the options its server should be created with.
 */
export interface HttpListener {
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  serverOptions?: Pick<ServerOptions, 'IncomingMessage' | 'ServerResponse'>;
}

interface HotRoute {
  route: ReturnType<Router['route']>;
  handlers: readonly RequestHandler[];
  routeErrors: readonly ErrorRequestHandler[];
  /** The route's error handlers, then the app's (set by `listener`). */
  errorHandlers: readonly ErrorRequestHandler[];
}

/** A handler's rejected promise goes to `next(err)`, as Express's Layer does (so does a throw). */
function rejectedTo(ret: Promise<unknown>, next: (err: unknown) => void): void {
  ret.then(undefined, (err: unknown) => next(err || new Error('Rejected promise')));
}
