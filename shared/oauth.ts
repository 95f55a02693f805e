import { discoverAuthorizationServerMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { createRemoteJWKSet, decodeJwt, errors as jose, jwtVerify, type JWTPayload } from 'jose';
import {
  createTokenVerifier,
  noStaticKeyVerifier,
  type AccessTokenVerifier,
  type TokenVerifier,
} from './auth';
import type { Config, OAuthConfig } from './config';
import { AuthFailure, errors } from './errors';
import type { Logger } from './logger';
import { TOKEN_TYPES, type TokenClaims, type TokenType } from './types';

/**
 * Subs of the authorization server's tokens get this prefix, so that they never share per-sub
 * state (sessions, quotas, rate limits, in-flight counts) with a static token of the same sub.
 */
export const OAUTH_SUB_PREFIX = 'oauth:';

/** How long a failed metadata discovery is remembered before the next request tries again. */
const DISCOVERY_RETRY_MS = 5000;

/** The scope of each token type, highest first: a token gets the highest type it has a scope for. */
export function scopesOf(oauth: Pick<OAuthConfig, 'scopePrefix'>): Record<TokenType, string> {
  return {
    master: `${oauth.scopePrefix}master`,
    team: `${oauth.scopePrefix}team`,
    readonly: `${oauth.scopePrefix}readonly`,
  };
}

/**
 * The gateway's verifier. Without OAUTH_ISSUER: the static one (JWT_SECRET / JWT_PUBLIC_KEY).
 * With it, each token is routed by its `iss`: the issuer's tokens are verified against its
 * JWKS, every other token as a static JWT, so both kinds work side by side.
 */
export function createAccessTokenVerifier(config: Config, logger: Logger): AccessTokenVerifier {
  if (!config.oauth) return createTokenVerifier(config);
  // OAUTH_ISSUER alone (no static key): static JWTs are refused as a wrong key refuses them.
  const staticVerifier =
    config.jwtSecret || config.jwtPublicKey ? createTokenVerifier(config) : noStaticKeyVerifier;
  const oauthVerifier = new OAuthTokenVerifier(config.oauth, logger);
  const issuer = config.oauth.issuer;
  return {
    verify(token: string): TokenClaims | Promise<TokenClaims> {
      const iss = issuerOf(token);
      if (iss === issuer) return oauthVerifier.verify(token);
      return verifyStatic(staticVerifier, token, iss);
    },
  };
}

/** A static JWT; a token naming another issuer that our keys do not verify is that issuer's. */
function verifyStatic(
  verifier: TokenVerifier,
  token: string,
  iss: string | undefined,
): TokenClaims {
  try {
    return verifier.verify(token);
  } catch (err) {
    if (iss !== undefined && err instanceof AuthFailure && err.reason === 'signature') {
      throw new AuthFailure('issuer', 'Token issuer is not accepted');
    }
    throw err;
  }
}

/** The unverified `iss` of a JWT (only to choose the verifier), undefined when absent or unreadable. */
function issuerOf(token: string): string | undefined {
  try {
    const { iss } = decodeJwt(token);
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Access tokens of one authorization server, verified against its JWKS. jose's remote key set
 * caches the keys and fetches them again when a token names an unknown `kid` (at most once per
 * OAUTH_JWKS_COOLDOWN_MS), so a rotated key works on every pod without a restart, and keys the
 * server still publishes keep verifying the tokens they signed until those expire.
 */
export class OAuthTokenVerifier {
  private keySet?: Promise<ReturnType<typeof createRemoteJWKSet>>;
  private readonly scopes: Record<TokenType, string>;
  private readonly logger: Logger;

  constructor(
    private readonly oauth: OAuthConfig,
    logger: Logger,
  ) {
    this.scopes = scopesOf(oauth);
    this.logger = logger.child({ component: 'oauth' });
  }

  async verify(token: string): Promise<TokenClaims> {
    const keySet = await this.jwks();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        issuer: this.oauth.issuer,
        audience: this.oauth.audience,
        algorithms: this.oauth.algorithms,
        clockTolerance: this.oauth.clockToleranceS,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      throw this.failure(err);
    }
    return this.claimsOf(payload);
  }

  /**
   * The key set, made once; its URL comes from the issuer's metadata unless configured. A failed
   * discovery is remembered for DISCOVERY_RETRY_MS (every request meanwhile gets 503 at once,
   * and one warning is logged), then tried again.
   */
  private jwks(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (!this.keySet) {
      const attempt = this.jwksUrl().then((url) =>
        createRemoteJWKSet(new URL(url), {
          cooldownDuration: this.oauth.jwksCooldownMs,
          cacheMaxAge: this.oauth.jwksCacheMaxAgeMs,
        }),
      );
      this.keySet = attempt;
      attempt.catch((err: unknown) => {
        this.logger.warn('Authorization server metadata unavailable', {
          issuer: this.oauth.issuer,
          error: err instanceof Error ? err.message : String(err),
        });
        setTimeout(() => {
          if (this.keySet === attempt) this.keySet = undefined;
        }, DISCOVERY_RETRY_MS).unref();
      });
    }
    return this.keySet.catch(() => {
      throw errors.unavailable('The authorization server cannot be reached; retry later', 5);
    });
  }

  private async jwksUrl(): Promise<string> {
    if (this.oauth.jwksUrl) return this.oauth.jwksUrl;
    const metadata = await discoverAuthorizationServerMetadata(this.oauth.issuer);
    if (!metadata) throw new Error(`No metadata found for issuer ${this.oauth.issuer}`);
    // RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
    if (metadata.issuer !== this.oauth.issuer) {
      throw new Error(`Metadata names issuer ${metadata.issuer}, not ${this.oauth.issuer}`);
    }
    const url = (metadata as { jwks_uri?: unknown }).jwks_uri;
    if (typeof url !== 'string') throw new Error(`Issuer ${this.oauth.issuer} has no jwks_uri`);
    return url;
  }

  private failure(err: unknown): AuthFailure | Error {
    if (err instanceof jose.JWTExpired) return new AuthFailure('expired', 'Token expired');
    if (err instanceof jose.JWTClaimValidationFailed) {
      switch (err.claim) {
        case 'aud':
          return new AuthFailure('audience', 'Token was issued for another resource');
        case 'iss':
          return new AuthFailure('issuer', 'Token issuer is not accepted');
        case 'nbf':
          return new AuthFailure('not_before', 'Token is not valid yet');
        default:
          return new AuthFailure('claims', `Token claim ${err.claim} is missing or invalid`);
      }
    }
    if (err instanceof jose.JWSInvalid || err instanceof jose.JWTInvalid) {
      return new AuthFailure('malformed', 'Invalid token');
    }
    if (
      err instanceof jose.JOSEAlgNotAllowed ||
      err instanceof jose.JWSSignatureVerificationFailed ||
      err instanceof jose.JWKSNoMatchingKey ||
      err instanceof jose.JWKSMultipleMatchingKeys ||
      err instanceof jose.JOSENotSupported
    ) {
      return new AuthFailure('signature', 'Invalid token');
    }
    // The key set could not be fetched (timeout, network, a bad document): not the token's fault.
    this.logger.warn('JWKS unavailable', {
      issuer: this.oauth.issuer,
      error: err instanceof Error ? err.message : String(err),
    });
    return errors.unavailable('The authorization server keys cannot be fetched; retry later', 5);
  }

  private claimsOf(payload: JWTPayload): TokenClaims {
    const type = this.typeOf(payload);
    if (!type) {
      throw new AuthFailure(
        'scope',
        `Token has none of the scopes ${TOKEN_TYPES.map((t) => this.scopes[t]).join(', ')}`,
      );
    }
    const tools = nameList(payload[this.oauth.toolsClaim]);
    if (tools === null) {
      throw new AuthFailure('claims', `Token claim ${this.oauth.toolsClaim} must list tool names`);
    }
    return {
      sub: `${OAUTH_SUB_PREFIX}${payload.sub as string}`,
      type,
      ...(tools ? { tools } : {}),
      ...(typeof payload.exp === 'number' ? { exp: payload.exp } : {}),
    };
  }

  private typeOf(payload: JWTPayload): TokenType | undefined {
    const granted = new Set(this.oauth.scopeClaims.flatMap((c) => nameList(payload[c]) ?? []));
    return TOKEN_TYPES.find((type) => granted.has(this.scopes[type]));
  }
}

/** A claim listing names: an array of strings or a space-separated string; null when neither. */
function nameList(value: unknown): string[] | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value.split(' ').filter(Boolean);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  return null;
}
