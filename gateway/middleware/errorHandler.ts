import type { ErrorRequestHandler, RequestHandler } from 'express';
import { GatewayError, asGatewayError, errors } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import { truncate } from '../../shared/text';

/** Unknown routes: 404 in the same JSON shape as every other error. */
export function notFound(): RequestHandler {
  // req.path, never req.originalUrl: the query may hold a token.
  return (req, _res, next) =>
    next(errors.notFound(`No route for ${truncate(req.method)} ${truncate(req.path)}`));
}

/**
 * The one error middleware: every failure leaves as `{ error: { code, message } }` with the
 * status of its GatewayError. Body-parser errors are mapped; anything else is a logged 500.
 */
export function errorHandler(logger: Logger, maxBodyBytes: number): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const error = toGatewayError(err, maxBodyBytes);
    if (asGatewayError(err) === undefined && error.status >= 500) {
      logger.error('Request failed', {
        method: req.method,
        path: req.path,
        error: err instanceof Error ? err.message : String(err),
        stack: err instanceof Error ? err.stack : undefined,
      });
    }
    if (res.headersSent) {
      // A stream already started: nothing to answer, just drop it.
      res.destroy();
      return;
    }
    res.set(error.headers).status(error.status).json(error.toJSON());
  };
}

interface HttpError {
  status?: number;
  statusCode?: number;
  type?: string;
  message?: string;
}

function toGatewayError(err: unknown, maxBodyBytes: number): GatewayError {
  const known = asGatewayError(err);
  if (known) return known;
  const httpError = (typeof err === 'object' && err !== null ? err : {}) as HttpError;
  switch (httpError.type) {
    case 'entity.too.large':
      return errors.payloadTooLarge(maxBodyBytes);
    case 'entity.parse.failed':
      return errors.badRequest('Malformed JSON body');
  }
  const status = httpError.status ?? httpError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return errors.badRequest(httpError.message ?? 'Bad request', status);
  }
  return errors.internal();
}
