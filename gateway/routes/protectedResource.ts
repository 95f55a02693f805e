import { Router, type Request } from 'express';
import type { OAuthConfig } from '../../shared/config';
import { scopesOf } from '../../shared/oauth';
import { TOKEN_TYPES, type TokenType } from '../../shared/types';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * This gateway as an OAuth protected resource (RFC 9728): its metadata document, and the
 * parameters of the WWW-Authenticate challenges that point clients to it.
 */
export class ProtectedResource {
  private readonly scopes: Record<TokenType, string>;
  /** Set when OAUTH_AUDIENCE is an http(s) URL: the metadata URL follows from it alone. */
  private readonly canonicalMetadataUrl?: string;

  constructor(private readonly oauth: OAuthConfig) {
    this.scopes = scopesOf(oauth);
    this.canonicalMetadataUrl = metadataUrlOf(oauth.audience);
  }

  /** The scope a token needs for this token type (403 insufficient_scope names it). */
  scopeFor(type: TokenType): string {
    return this.scopes[type];
  }

  /**
   * Where clients find the metadata. From OAUTH_AUDIENCE when it is a URL (right behind any
   * proxy); else from the request's scheme and host (X-Forwarded-Proto/Host when TRUST_PROXY
   * trusts the proxy), for the /mcp resource.
   */
  metadataUrl(req: Request): string {
    return this.canonicalMetadataUrl ?? `${req.protocol}://${req.host}${WELL_KNOWN}/mcp`;
  }

  /** The RFC 9728 document: one resource (OAUTH_AUDIENCE), one authorization server. */
  metadata(): Record<string, unknown> {
    return {
      resource: this.oauth.audience,
      authorization_servers: [this.oauth.issuer],
      scopes_supported: TOKEN_TYPES.map((t) => this.scopes[t]).reverse(),
      bearer_methods_supported: ['header'],
      resource_name: 'MCP event gateway',
    };
  }

  /** GET /.well-known/oauth-protected-resource and its /mcp form: public, any origin may read. */
  routes(): Router {
    const router = Router();
    const paths = [WELL_KNOWN, `${WELL_KNOWN}/mcp`];
    router.get(paths, (_req, res) => {
      res.set('Access-Control-Allow-Origin', '*').set('Cache-Control', 'max-age=300');
      res.json(this.metadata());
    });
    // Browser clients send MCP-Protocol-Version with it, which needs a preflight.
    router.options(paths, (_req, res) => {
      res
        .set('Access-Control-Allow-Origin', '*')
        .set('Access-Control-Allow-Methods', 'GET, OPTIONS')
        .set('Access-Control-Allow-Headers', 'MCP-Protocol-Version, Accept')
        .set('Access-Control-Max-Age', '600')
        .status(204)
        .end();
    });
    return router;
  }
}

/** RFC 9728 §3.1: the well-known segment goes between the host and the resource's path. */
function metadataUrlOf(audience: string): string | undefined {
  let url: URL;
  try {
    url = new URL(audience);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}${WELL_KNOWN}${path}`;
}
