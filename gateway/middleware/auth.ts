import type { Request, RequestHandler, Response } from 'express';
import type { AccessTokenVerifier } from '../../shared/auth';
import { AuthFailure, GatewayError, errors } from '../../shared/errors';
import type { Metrics } from '../../shared/metrics';
import type { TokenClaims, TokenType } from '../../shared/types';
import type { ProtectedResource } from '../routes/protectedResource';

/**
 * Authentication in two steps around the rate limiter: `authenticate` reads and verifies the
 * token once and records the outcome (so the limiter can key on the token's sub), then
 * `requireAuth` rejects what failed and checks the token type. The token itself is never stored
 * or logged.
 */

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

interface AuthOptions {
  /** Only GET /mcp/sse: browsers' EventSource cannot set headers. */
  allowQueryToken: boolean;
}

/** Verifies the token (at once for a static JWT, after a JWKS lookup for an OAuth token). */
export function authenticate(verifier: AccessTokenVerifier, options: AuthOptions): RequestHandler {
  const refused = (res: Response, err: unknown) => {
    res.locals.authError =
      err instanceof GatewayError ? err : new AuthFailure('malformed', 'Invalid token');
  };
  return (req, res, next) => {
    let claims: TokenClaims | Promise<TokenClaims>;
    try {
      claims = verifier.verify(readToken(req, options.allowQueryToken));
    } catch (err) {
      refused(res, err);
      return next();
    }
    if (!(claims instanceof Promise)) {
      res.locals.claims = claims;
      return next();
    }
    claims.then(
      (verified) => {
        res.locals.claims = verified;
        next();
      },
      (err: unknown) => {
        refused(res, err);
        next();
      },
    );
  };
}

interface RequireOptions {
  /** Token types allowed; all when absent. */
  types?: readonly TokenType[];
  /** Set with OAUTH_ISSUER: challenges point to the resource metadata and name scopes. */
  resource?: ProtectedResource;
  metrics: Metrics;
}

/**
 * Rejects requests without valid claims (401) or of another token type (403), counting each
 * refusal by reason. A 401 closes the connection once answered: its body is never read, so an
 * unauthenticated client cannot hold the socket by trickling one. With an authorization server
 * configured, the WWW-Authenticate challenge names the resource metadata (RFC 9728) and, on a
 * 403, the scope to ask for (RFC 6750 insufficient_scope), so that a client can step up.
 */
export function requireAuth(options: RequireOptions): RequestHandler {
  const { types, resource, metrics } = options;
  // The least scope this route needs: the lowest allowed type's (types are listed highest first).
  const neededScope = resource?.scopeFor(types ? types[types.length - 1] : 'readonly');
  return (req, res, next) => {
    const authError = res.locals.authError as GatewayError | undefined;
    if (authError) {
      if (authError instanceof AuthFailure) metrics.authFailures.inc({ reason: authError.reason });
      if (authError.status !== 401 && authError.status !== 403) return next(authError);
      if (authError.status === 401) res.set('Connection', 'close');
      if (!resource || !(authError instanceof AuthFailure)) return next(authError);
      return next(withChallenge(authError, req, resource, neededScope as string, types));
    }
    const claims = claimsOf(res);
    if (types && !types.includes(claims.type)) {
      metrics.authFailures.inc({ reason: 'scope' });
      const refusal = new AuthFailure(
        'scope',
        `This endpoint requires a ${types.join(' or ')} token`,
      );
      return next(
        resource ? withChallenge(refusal, req, resource, neededScope as string) : refusal,
      );
    }
    next();
  };
}

/** The refusal with its RFC 6750 / RFC 9728 WWW-Authenticate challenge. */
function withChallenge(
  failure: AuthFailure,
  req: Request,
  resource: ProtectedResource,
  neededScope: string,
  types?: readonly TokenType[],
): GatewayError {
  const params = [`resource_metadata="${resource.metadataUrl(req)}"`];
  if (failure.status === 403) {
    params.unshift('error="insufficient_scope"', `scope="${neededScope}"`);
  } else {
    // No error code for a request without a token (RFC 6750 §3.1); a scope hint only where a
    // route needs more than any mcp scope gives.
    if (failure.reason !== 'missing') params.unshift('error="invalid_token"');
    if (types) params.push(`scope="${neededScope}"`);
  }
  return new GatewayError(failure.code, failure.message, failure.status, {
    ...failure.headers,
    'WWW-Authenticate': `Bearer ${params.join(', ')}`,
  });
}

/** The verified claims of the request (after requireAuth). */
export function claimsOf(res: Response): TokenClaims {
  const claims = res.locals.claims as TokenClaims | undefined;
  if (!claims) throw errors.unauthorized();
  return claims;
}

/** The verified claims when authentication succeeded, for the rate limiter's key. */
export function optionalClaimsOf(res: Response): TokenClaims | undefined {
  return res.locals.claims as TokenClaims | undefined;
}

function readToken(req: Request, allowQueryToken: boolean): string {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = BEARER.exec(header);
    if (!match) throw new AuthFailure('malformed', "Authorization header must be 'Bearer <token>'");
    return match[1];
  }
  const queryToken = (req.query as Record<string, unknown>).token;
  if (queryToken === undefined) throw new AuthFailure('missing', 'Missing token');
  if (!allowQueryToken) {
    throw new AuthFailure(
      'malformed',
      'A query token is accepted on GET /mcp/sse only; send an Authorization: Bearer header',
    );
  }
  if (typeof queryToken !== 'string' || queryToken.length === 0) {
    throw new AuthFailure('malformed', 'The token query parameter must be one token');
  }
  return queryToken;
}
