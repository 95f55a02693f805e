import { createPublicKey, createSecretKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { AuthFailure, type AuthFailureReason } from './errors';
import { TOKEN_TYPES, type TokenClaims, type TokenType } from './types';

/** Verifies and issues the gateway's JWTs (HS256 with a secret, or RS256/ES256 with a public key). */
export interface TokenVerifier {
  verify(token: string): TokenClaims;
}

/**
 * What the gateway verifies tokens with: the static verifier above (synchronous), or one that
 * also accepts an authorization server's access tokens (asynchronous: keys come from its JWKS).
 * Either throws (or rejects with) an AuthFailure.
 */
export interface AccessTokenVerifier {
  verify(token: string): TokenClaims | Promise<TokenClaims>;
}

export interface AuthKeys {
  jwtSecret?: string;
  jwtPublicKey?: string;
}

export function createTokenVerifier(keys: AuthKeys): TokenVerifier {
  if (!keys.jwtPublicKey && !keys.jwtSecret) {
    throw new Error('JWT_SECRET or JWT_PUBLIC_KEY is required');
  }
  // A key object made once: given a string, jsonwebtoken tries to parse it as a public key on
  // every verify (and fails, for a secret), which costs ~40x the verification itself.
  const key = keys.jwtPublicKey
    ? createPublicKey(keys.jwtPublicKey)
    : createSecretKey(Buffer.from(keys.jwtSecret as string, 'utf8'));
  const algorithms: jwt.Algorithm[] = keys.jwtPublicKey ? ['RS256', 'ES256'] : ['HS256'];
  const verified = new VerifiedTokens();
  return {
    verify(token: string): TokenClaims {
      const known = verified.get(token);
      if (known) return known;
      let payload: string | jwt.JwtPayload;
      try {
        payload = jwt.verify(token, key, { algorithms });
      } catch (err) {
        throw staticFailure(err);
      }
      const claims = parseClaims(payload);
      verified.add(token, claims, (payload as jwt.JwtPayload).nbf);
      return claims;
    },
  };
}

/** Tokens remembered as verified, at most (the oldest are forgotten first). */
const VERIFIED_TOKENS_MAX = 1000;

interface VerifiedToken {
  claims: TokenClaims;
  nbf?: number;
}

/**
 * Tokens whose signature and claims were verified, so that a client sending the same token on
 * every request pays the signature check (HMAC or RSA, plus jsonwebtoken's parsing) once. Only
 * time can change a verified token's verdict: each use checks exp and nbf again (as
 * jsonwebtoken does, in whole seconds), and one outside them is verified afresh, to fail with
 * the error jsonwebtoken gives.
 */
class VerifiedTokens {
  private readonly tokens = new Map<string, VerifiedToken>();

  get(token: string): TokenClaims | undefined {
    const known = this.tokens.get(token);
    if (!known) return undefined;
    const now = Math.floor(Date.now() / 1000);
    const { claims, nbf } = known;
    if ((claims.exp !== undefined && now >= claims.exp) || (nbf !== undefined && nbf > now)) {
      this.tokens.delete(token);
      return undefined;
    }
    return claims;
  }

  add(token: string, claims: TokenClaims, nbf: unknown): void {
    if (this.tokens.size >= VERIFIED_TOKENS_MAX) {
      this.tokens.delete(this.tokens.keys().next().value as string);
    }
    // Frozen: the same claims object serves every request with this token.
    Object.freeze(claims.tools);
    this.tokens.set(token, {
      claims: Object.freeze(claims),
      ...(typeof nbf === 'number' ? { nbf } : {}),
    });
  }
}

/**
 * The static verifier of a gateway with no static key (OAUTH_ISSUER alone): every static JWT is
 * refused, for the reason a wrong key would give (malformed, else signature).
 */
export const noStaticKeyVerifier: TokenVerifier = {
  verify(token: string): TokenClaims {
    throw jwt.decode(token) === null
      ? new AuthFailure('malformed', 'Invalid token')
      : new AuthFailure('signature', 'Invalid token');
  },
};

function staticFailure(err: unknown): AuthFailure {
  let reason: AuthFailureReason = 'signature';
  if (err instanceof jwt.TokenExpiredError) reason = 'expired';
  else if (err instanceof jwt.NotBeforeError) reason = 'not_before';
  else if (err instanceof jwt.JsonWebTokenError && /malformed|invalid token/.test(err.message)) {
    reason = 'malformed';
  }
  return new AuthFailure(reason, reason === 'expired' ? 'Token expired' : 'Invalid token');
}

function parseClaims(payload: string | jwt.JwtPayload): TokenClaims {
  if (typeof payload === 'string') throw new AuthFailure('claims', 'Invalid token payload');
  const { sub, type, tools, exp } = payload as Record<string, unknown>;
  if (typeof sub !== 'string' || sub.length === 0) {
    throw new AuthFailure('claims', 'Token has no sub');
  }
  if (!TOKEN_TYPES.includes(type as TokenType)) {
    throw new AuthFailure('claims', 'Unknown token type');
  }
  if (tools !== undefined && !(Array.isArray(tools) && tools.every((t) => typeof t === 'string'))) {
    throw new AuthFailure('claims', 'Token tools must be a list of names');
  }
  return {
    sub,
    type: type as TokenType,
    ...(tools ? { tools: tools as string[] } : {}),
    ...(typeof exp === 'number' ? { exp } : {}),
  };
}

export interface IssueOptions {
  type: TokenType;
  sub: string;
  /** A jsonwebtoken duration ('1h', '30d') or seconds. */
  ttl?: string | number;
  tools?: string[];
}

/** Signs an HS256 token with the shared secret (the `npm run token` command and tests). */
export function issueToken(secret: string, opts: IssueOptions): string {
  const payload: Record<string, unknown> = { type: opts.type };
  if (opts.tools) payload.tools = opts.tools;
  return jwt.sign(payload, secret, {
    algorithm: 'HS256',
    subject: opts.sub,
    ...(opts.ttl !== undefined ? { expiresIn: opts.ttl as jwt.SignOptions['expiresIn'] } : {}),
  });
}

/** Which tools a token may call, given whether a tool only reads. */
export function mayCallTool(claims: TokenClaims, tool: string, readOnly: boolean): boolean {
  if (claims.tools && !claims.tools.includes(tool)) return false;
  return claims.type !== 'readonly' || readOnly;
}
