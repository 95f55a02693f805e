import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

/** A real OAuth 2 authorization server (oauth2-mock-server) in the test process. */
export interface AuthServer {
  /** Its issuer URL, `http://127.0.0.1:<port>` (no trailing slash). */
  url: string;
  issuer: OAuth2Issuer;
  /** Epoch ms of every JWKS fetch, oldest first (who fetched keys, and when). */
  jwksFetches: number[];
  /**
   * Signs an access token as the token endpoint would: `sub`, `aud`, `scope` and any other
   * claims given (`exp` in seconds from now via expiresIn), with the key `kid` or the current one.
   */
  token(
    claims: Record<string, unknown>,
    options?: { kid?: string; expiresIn?: number },
  ): Promise<string>;
  /** Publishes a new signing key (kid returned); the server then signs with it too. */
  rotate(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts an authorization server on a free port of 127.0.0.1 with one RS256 key. Its token
 * endpoint issues client-credentials tokens as a resource-indicator-aware server does: `aud` is
 * the requested `resource` (RFC 8707), `sub` the client id.
 */
export async function startAuthServer(): Promise<AuthServer> {
  const issuer = new OAuth2Issuer();
  let keys = 0;
  const rotate = async () => {
    keys += 1;
    const kid = `key-${keys}`;
    await issuer.keys.generate('RS256', { kid });
    return kid;
  };
  let currentKid = await rotate();
  const service = new OAuth2Service(issuer);
  service.on('beforeTokenSigning', (token: MutableToken, req: http.IncomingMessage) => {
    const body = (req as unknown as { body?: Record<string, string> }).body ?? {};
    if (body.resource) token.payload.aud = body.resource;
    token.payload.sub = clientIdOf(req) ?? body.client_id ?? 'anonymous-client';
  });
  const jwksFetches: number[] = [];
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/jwks')) jwksFetches.push(Date.now());
    service.requestHandler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  issuer.url = `http://127.0.0.1:${port}`;
  return {
    url: issuer.url,
    issuer,
    jwksFetches,
    token: (claims, options = {}) =>
      issuer.buildToken({
        kid: options.kid ?? currentKid,
        ...(options.expiresIn !== undefined ? { expiresIn: options.expiresIn } : {}),
        scopesOrTransform: (_header, payload) => Object.assign(payload, claims),
      }),
    rotate: async () => (currentKid = await rotate()),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface MutableToken {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

function clientIdOf(req: http.IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  return decodeURIComponent(decoded.slice(0, decoded.indexOf(':')));
}
