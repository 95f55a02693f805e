import type { Request, RequestHandler } from 'express';
import type { Config } from '../../shared/config';
import { errors, type GatewayError } from '../../shared/errors';

export const CORS_ALLOWED_HEADERS =
  'Authorization, Content-Type, Cache-Control, Last-Event-ID, X-SSE-Events';
/** The MCP transports' routes also take their session and version headers. */
const MCP_PATHS = new Set(['/mcp', '/sse', '/messages']);
const MCP_ALLOWED_HEADERS = `${CORS_ALLOWED_HEADERS}, Mcp-Session-Id, MCP-Protocol-Version, Mcp-Method, Mcp-Name`;
const ALLOWED_METHODS = 'GET, POST, DELETE, OPTIONS';
const EXPOSED_HEADERS =
  'Retry-After, RateLimit, RateLimit-Policy, Mcp-Session-Id, WWW-Authenticate';

/** The names a loopback-bound gateway answers to (any port): what DNS rebinding cannot fake. */
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The one Origin/Host policy of every route (seed API, /mcp, /sse, /messages):
 * - no Origin (curl, SDKs, servers) and same-origin requests (the Origin's host:port is the
 *   request's Host, e.g. the demo page) are allowed; any other Origin must be listed in
 *   ALLOWED_ORIGINS, or ALLOWED_ORIGINS must be `*`;
 * - a gateway bound to a loopback address also requires a loopback Host (DNS rebinding: a
 *   page of evil.example resolved to 127.0.0.1 is same-origin with itself, not with us).
 */
export class OriginPolicy {
  private readonly anyOrigin: boolean;
  private readonly listed: Set<string>;
  private readonly loopbackOnly: boolean;

  constructor(config: Pick<Config, 'allowedOrigins' | 'host'>) {
    this.anyOrigin = config.allowedOrigins.includes('*');
    this.listed = new Set(config.allowedOrigins);
    this.loopbackOnly = isLoopbackAddress(config.host);
  }

  /** Why this request is refused (403), or undefined when it passes. */
  refusal(req: Request): GatewayError | undefined {
    if (this.loopbackOnly) {
      const host = req.headers.host;
      if (host !== undefined && !LOOPBACK_NAMES.has(hostnameOf(host))) {
        return errors.forbidden(`Host not allowed: ${clip(host, 100)}`);
      }
    }
    const origin = req.headers.origin;
    if (origin === undefined || this.originAllowed(origin, req)) return undefined;
    return errors.forbidden(`Origin not allowed: ${clip(origin, 100)}`);
  }

  /** The Access-Control-Allow-Origin value for this request, or null for none. */
  allowOriginHeader(req: Request): string | null {
    const origin = req.headers.origin;
    if (origin === undefined || !this.originAllowed(origin, req)) return null;
    return this.anyOrigin ? '*' : origin;
  }

  private originAllowed(origin: string, req: Request): boolean {
    return this.anyOrigin || this.listed.has(origin) || isSameOrigin(origin, req);
  }
}

/**
 * CORS headers and preflights for every route, and the 403 of the policy for the seed API and
 * probes. The MCP routes are refused by `originGuard` instead, which answers in JSON-RPC.
 */
export function cors(policy: OriginPolicy): RequestHandler {
  return (req, res, next) => {
    const allowed = policy.allowOriginHeader(req);
    res.vary('Origin');
    if (allowed) {
      res.setHeader('Access-Control-Allow-Origin', allowed);
      res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    }
    const mcpPath = MCP_PATHS.has(req.path);
    const preflight =
      req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    if (preflight || !mcpPath) {
      const refusal = policy.refusal(req);
      if (refusal) return next(refusal);
    }
    if (!preflight) return next();
    res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
    res.setHeader(
      'Access-Control-Allow-Headers',
      mcpPath ? MCP_ALLOWED_HEADERS : CORS_ALLOWED_HEADERS,
    );
    res.setHeader('Access-Control-Max-Age', '600');
    res.status(204).end();
  };
}

/** The same policy on the MCP routes (before authentication), whose errors are JSON-RPC. */
export function originGuard(policy: OriginPolicy): RequestHandler {
  return (req, _res, next) => next(policy.refusal(req));
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase();
  return a === 'localhost' || a === '::1' || a === '[::1]' || /^127(\.\d{1,3}){3}$/.test(a);
}

/** `example.com:8080` -> `example.com`; `[::1]:3000` -> `[::1]`. */
function hostnameOf(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

/**
 * Same host and port as the request (the scheme is not compared: behind a TLS-terminating
 * proxy the gateway sees http). `req.host` honours X-Forwarded-Host when TRUST_PROXY says so.
 */
function isSameOrigin(origin: string, req: Request): boolean {
  const host = req.host;
  if (!host) return false;
  try {
    const url = new URL(origin);
    return url.host !== '' && url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

/** Echoed header values are bounded: a header may be up to 16 KB. */
function clip(value: string, max: number): string {
  return value.length <= max ? value : `${value.slice(0, max)}... (${value.length} characters)`;
}
