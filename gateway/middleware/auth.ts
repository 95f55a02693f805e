import type { Request, RequestHandler, Response } from 'express';
import type { TokenVerifier } from '../../shared/auth';
import { GatewayError, errors } from '../../shared/errors';
import type { TokenClaims, TokenType } from '../../shared/types';

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

export function authenticate(verifier: TokenVerifier, options: AuthOptions): RequestHandler {
  return (req, res, next) => {
    try {
      res.locals.claims = verifier.verify(readToken(req, options.allowQueryToken));
    } catch (err) {
      res.locals.authError = err instanceof GatewayError ? err : errors.unauthorized();
    }
    next();
  };
}

/**
 * Rejects requests without valid claims (401) or of another token type (403). A 401 closes the
 * connection once answered: its body is never read, so an unauthenticated client cannot hold
 * the socket by trickling one.
 */
export function requireAuth(allowedTypes?: readonly TokenType[]): RequestHandler {
  return (_req, res, next) => {
    const authError = res.locals.authError as GatewayError | undefined;
    if (authError) {
      res.set('Connection', 'close');
      return next(authError);
    }
    const claims = claimsOf(res);
    if (allowedTypes && !allowedTypes.includes(claims.type)) {
      return next(errors.forbidden(`This endpoint requires a ${allowedTypes.join(' or ')} token`));
    }
    next();
  };
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
    if (!match) throw errors.unauthorized("Authorization header must be 'Bearer <token>'");
    return match[1];
  }
  const queryToken = (req.query as Record<string, unknown>).token;
  if (queryToken === undefined) throw errors.unauthorized('Missing token');
  if (!allowQueryToken) {
    throw errors.unauthorized(
      'A query token is accepted on GET /mcp/sse only; send an Authorization: Bearer header',
    );
  }
  if (typeof queryToken !== 'string' || queryToken.length === 0) {
    throw errors.unauthorized('The token query parameter must be one token');
  }
  return queryToken;
}
