import type { RequestHandler } from 'express';
import { errors } from '../../shared/errors';

export const CORS_ALLOWED_HEADERS = 'Authorization, Content-Type, Cache-Control, Last-Event-ID';
/** The MCP transports' routes also take their session and version headers. */
const MCP_PATHS = new Set(['/mcp', '/sse', '/messages']);
const MCP_ALLOWED_HEADERS = `${CORS_ALLOWED_HEADERS}, Mcp-Session-Id, MCP-Protocol-Version`;
const ALLOWED_METHODS = 'GET, POST, DELETE, OPTIONS';
const EXPOSED_HEADERS = 'Retry-After, RateLimit, RateLimit-Policy, Mcp-Session-Id';

/**
 * CORS from ALLOWED_ORIGINS: `*` allows every origin (answered with `*`), otherwise a listed
 * origin is echoed. Preflights are answered here; a preflight from a foreign origin gets 403,
 * other requests from one simply carry no CORS headers, so the browser withholds the response.
 */
export function cors(allowedOrigins: readonly string[]): RequestHandler {
  const anyOrigin = allowedOrigins.includes('*');
  const listed = new Set(allowedOrigins);
  return (req, res, next) => {
    const origin = req.headers.origin;
    const allowed = anyOrigin ? '*' : origin !== undefined && listed.has(origin) ? origin : null;
    if (!anyOrigin) res.vary('Origin');
    if (allowed) {
      res.setHeader('Access-Control-Allow-Origin', allowed);
      res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    }
    if (req.method !== 'OPTIONS' || req.headers['access-control-request-method'] === undefined) {
      return next();
    }
    if (origin !== undefined && !allowed) return next(errors.forbidden('Origin not allowed'));
    res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
    res.setHeader(
      'Access-Control-Allow-Headers',
      MCP_PATHS.has(req.path) ? MCP_ALLOWED_HEADERS : CORS_ALLOWED_HEADERS,
    );
    res.setHeader('Access-Control-Max-Age', '600');
    res.status(204).end();
  };
}
