/**
 * The gateway as an OAuth resource server, over HTTP, against a real authorization server
 * (oauth2-mock-server) in this process: discovery, challenges, refusals by reason, scopes,
 * static JWTs beside OAuth tokens, key rotation.
 */
import { createPublicKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { loadConfig } from '../../../shared/config';
import type { AuthFailure } from '../../../shared/errors';
import { silentLogger } from '../../../shared/logger';
import { createAccessTokenVerifier } from '../../../shared/oauth';
import { startAuthServer, type AuthServer } from '../../helpers/authServer';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { scrapeMetric } from '../../helpers/scrape';
import { api, expectError } from './api';

const AUDIENCE = 'https://gateway.example.test/mcp';
const METADATA_URL = 'https://gateway.example.test/.well-known/oauth-protected-resource/mcp';
const nowS = () => Math.floor(Date.now() / 1000);

let as: AuthServer;
let otherAs: AuthServer;
let gw: GatewayHarness;

beforeAll(async () => {
  [as, otherAs] = await Promise.all([startAuthServer(), startAuthServer()]);
  gw = await startGateway({
    env: {
      OAUTH_ISSUER: as.url,
      OAUTH_AUDIENCE: AUDIENCE,
      // Rotation is tested here: an unknown kid refetches the JWKS at once.
      OAUTH_JWKS_COOLDOWN_MS: '0',
      OAUTH_CLOCK_TOLERANCE_S: '5',
    },
  });
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([as?.close(), otherAs?.close()]);
});

const accessToken = (scope: string, extra: Record<string, unknown> = {}) =>
  as.token({ sub: 'client-1', aud: AUDIENCE, scope, ...extra });
const stats = (token?: string) => api(gw.url, '/mcp/sse/stats', { token });
const failures = (reason: string) =>
  scrapeMetric(gw.url, 'mcpgw_auth_failures_total', `reason="${reason}"`);

describe('discovery (RFC 9728)', () => {
  it.each(['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp'])(
    '%s names the resource, the authorization server and the scopes',
    async (path) => {
      const res = await api(gw.url, path, { headers: { Origin: 'https://elsewhere.example' } });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        resource: AUDIENCE,
        authorization_servers: [as.url],
        scopes_supported: ['mcp:readonly', 'mcp:team', 'mcp:master'],
        bearer_methods_supported: ['header'],
        resource_name: 'MCP event gateway',
      });
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
    },
  );

  it('answers the preflight of any origin (browser clients send MCP-Protocol-Version)', async () => {
    const res = await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://elsewhere.example',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'mcp-protocol-version',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/MCP-Protocol-Version/);
  });

  it('an unreachable authorization server: 503 with Retry-After, not 401', async () => {
    const down = await startGateway({
      env: { OAUTH_ISSUER: 'http://127.0.0.1:1/realms/none', OAUTH_AUDIENCE: AUDIENCE },
    });
    try {
      const token = await as.token({
        iss: 'http://127.0.0.1:1/realms/none',
        sub: 'a',
        aud: AUDIENCE,
      });
      for (let i = 0; i < 2; i++) {
        const res = await api(down.url, '/mcp/sse/stats', { token });
        expectError(res, 503, 'unavailable');
        expect(res.headers.get('retry-after')).toBe('5');
      }
    } finally {
      await down.close();
    }
  });

  it.each([
    ['POST', '/mcp'],
    ['GET', '/sse'],
    ['POST', '/messages?sessionId=x'],
    ['GET', '/mcp/sse'],
  ])('%s %s without a token: 401 pointing to the metadata', async (method, path) => {
    const res = await api(gw.url, path, {
      method,
      ...(method === 'POST' ? { json: { jsonrpc: '2.0', id: 1, method: 'ping' } } : {}),
      headers: { Accept: 'application/json, text/event-stream' },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${METADATA_URL}"`);
  });

  it('a master-only route without a token names the scope it needs', async () => {
    const res = await stats();
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${METADATA_URL}", scope="mcp:master"`,
    );
  });

  it('an origin as the audience covers /sse too: the metadata is the root document', async () => {
    const rooted = await startGateway({
      env: { OAUTH_ISSUER: as.url, OAUTH_AUDIENCE: 'https://gateway.example.test' },
    });
    try {
      const res = await api(rooted.url, '/sse');
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe(
        'Bearer resource_metadata="https://gateway.example.test/.well-known/oauth-protected-resource"',
      );
    } finally {
      await rooted.close();
    }
  });

  it('an audience that is not a URL: the metadata URL follows the trusted proxy', async () => {
    const proxied = await startGateway({
      env: { OAUTH_ISSUER: as.url, OAUTH_AUDIENCE: 'api://mcp-gateway', TRUST_PROXY: 'true' },
    });
    try {
      const res = await api(proxied.url, '/mcp', {
        method: 'POST',
        json: { jsonrpc: '2.0', id: 1, method: 'ping' },
        headers: { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'mcp.example.test' },
      });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe(
        'Bearer resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/mcp"',
      );
    } finally {
      await proxied.close();
    }
  });
});

describe('access tokens', () => {
  it('a master-scoped token of the issuer is accepted', async () => {
    const res = await stats(await accessToken('openid mcp:master'));
    expect(res.status).toBe(200);
  });

  it('the highest scope gives the type, the tools claim the allow-list, the sub is prefixed', async () => {
    const verifier = createAccessTokenVerifier(
      loadConfig({ JWT_SECRET: 'x'.repeat(32), OAUTH_ISSUER: as.url, OAUTH_AUDIENCE: AUDIENCE }),
      silentLogger(),
    );
    const claims = await verifier.verify(
      await accessToken('mcp:readonly mcp:team', { tools: ['list_projects'] }),
    );
    expect(claims).toMatchObject({ sub: 'oauth:client-1', type: 'team', tools: ['list_projects'] });
  });

  it('scope and tools claims are configurable (Entra: scp and roles, a list)', async () => {
    const verifier = createAccessTokenVerifier(
      loadConfig({
        JWT_SECRET: 'x'.repeat(32),
        OAUTH_ISSUER: as.url,
        OAUTH_AUDIENCE: AUDIENCE,
        OAUTH_SCOPE_CLAIM: 'scp, roles',
        OAUTH_SCOPE_PREFIX: 'mcp.',
        OAUTH_TOOLS_CLAIM: 'mcp_tools',
      }),
      silentLogger(),
    );
    const token = await as.token({
      sub: 'svc',
      aud: AUDIENCE,
      scp: 'mcp.readonly',
      mcp_tools: 'a b',
    });
    expect(await verifier.verify(token)).toMatchObject({
      sub: 'oauth:svc',
      type: 'readonly',
      tools: ['a', 'b'],
    });
    const app = await as.token({ sub: 'daemon', aud: AUDIENCE, roles: ['mcp.team'] });
    expect(await verifier.verify(app)).toMatchObject({ sub: 'oauth:daemon', type: 'team' });
  });

  it('static JWTs keep working beside them', async () => {
    expect((await stats(gw.tokens.master)).status).toBe(200);
  });

  it('OAUTH_ISSUER alone (no static key): static JWTs are refused, access tokens accepted', async () => {
    const verifier = createAccessTokenVerifier(
      loadConfig({ OAUTH_ISSUER: as.url, OAUTH_AUDIENCE: AUDIENCE }),
      silentLogger(),
    );
    await expect(verifier.verify(await accessToken('mcp:team'))).resolves.toMatchObject({
      type: 'team',
    });
    const refusal = async (token: string) => {
      try {
        await verifier.verify(token);
      } catch (err) {
        return (err as AuthFailure).reason;
      }
      throw new Error('accepted');
    };
    expect(await refusal(gw.tokens.master)).toBe('signature');
    expect(await refusal('not-a-jwt')).toBe('malformed');
    const otherIssuer = await otherAs.token({ sub: 'x', aud: AUDIENCE, scope: 'mcp:master' });
    expect(await refusal(otherIssuer)).toBe('issuer');
  });
});

describe('refusals, each with its challenge and counted by reason', () => {
  const invalid = `Bearer error="invalid_token", resource_metadata="${METADATA_URL}", scope="mcp:master"`;

  it('a token issued for another resource: 401 audience', async () => {
    const before = await failures('audience');
    const res = await stats(await accessToken('mcp:master', { aud: 'https://other.example/mcp' }));
    expect(expectError(res, 401, 'unauthorized').message).toBe(
      'Token was issued for another resource',
    );
    expect(res.headers.get('www-authenticate')).toBe(invalid);
    expect(await failures('audience')).toBe(before + 1);
  });

  it('a token of another issuer: 401 issuer', async () => {
    const before = await failures('issuer');
    const token = await otherAs.token({ sub: 'x', aud: AUDIENCE, scope: 'mcp:master' });
    const res = await stats(token);
    expect(expectError(res, 401, 'unauthorized').message).toBe('Token issuer is not accepted');
    expect(res.headers.get('www-authenticate')).toBe(invalid);
    expect(await failures('issuer')).toBe(before + 1);
  });

  it('a token naming our issuer but signed by another server: 401 signature', async () => {
    const before = await failures('signature');
    const forged = await otherAs.token({
      iss: as.url,
      sub: 'x',
      aud: AUDIENCE,
      scope: 'mcp:master',
    });
    const res = await stats(forged);
    expect(expectError(res, 401, 'unauthorized').message).toBe('Invalid token');
    expect(await failures('signature')).toBe(before + 1);
  });

  it('an expired token: 401 expired', async () => {
    const before = await failures('expired');
    const res = await stats(await accessToken('mcp:master', { exp: nowS() - 60 }));
    expect(expectError(res, 401, 'unauthorized').message).toBe('Token expired');
    expect(res.headers.get('www-authenticate')).toBe(invalid);
    expect(await failures('expired')).toBe(before + 1);
  });

  it('a token not valid yet: 401 not_before', async () => {
    const before = await failures('not_before');
    const res = await stats(await accessToken('mcp:master', { nbf: nowS() + 120 }));
    expect(expectError(res, 401, 'unauthorized').message).toBe('Token is not valid yet');
    expect(await failures('not_before')).toBe(before + 1);
  });

  it('alg confusion: HS256 signed with the issuer public key as a secret: 401 signature', async () => {
    const { keys } = (await (await fetch(`${as.url}/jwks`)).json()) as { keys: object[] };
    const publicPem = createPublicKey({ key: keys[0], format: 'jwk' } as never)
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const before = await failures('signature');
    for (const secret of [publicPem, JSON.stringify(keys[0])]) {
      const forged = jwt.sign(
        { iss: as.url, aud: AUDIENCE, scope: 'mcp:master', sub: 'attacker' },
        secret,
        { algorithm: 'HS256', expiresIn: 300, keyid: 'key-1' },
      );
      const res = await stats(forged);
      expect(expectError(res, 401, 'unauthorized').message).toBe('Invalid token');
      expect(res.headers.get('www-authenticate')).toBe(invalid);
    }
    expect(await failures('signature')).toBe(before + 2);
  });

  it('a token without any mcp scope: 403 insufficient_scope naming the least scope', async () => {
    const before = await failures('scope');
    const res = await api(gw.url, '/mcp/sse/send', {
      token: await accessToken('openid profile'),
      json: { connectionId: 'x', message: { method: 'tools/list' } },
    });
    expect(expectError(res, 403, 'forbidden').message).toMatch(/none of the scopes/);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer error="insufficient_scope", scope="mcp:readonly", resource_metadata="${METADATA_URL}"`,
    );
    expect(await failures('scope')).toBe(before + 1);
  });

  it('a team token on a master route: 403 insufficient_scope scope="mcp:master"', async () => {
    const before = await failures('scope');
    const res = await stats(await accessToken('mcp:team'));
    expectError(res, 403, 'forbidden');
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer error="insufficient_scope", scope="mcp:master", resource_metadata="${METADATA_URL}"`,
    );
    expect(await failures('scope')).toBe(before + 1);
  });

  it('no token: counted as missing, without an error code in the challenge', async () => {
    const before = await failures('missing');
    await stats();
    expect(await failures('missing')).toBe(before + 1);
  });
});

test('key rotation: a new kid works at once, tokens of the old key until they expire', async () => {
  const oldToken = await accessToken('mcp:master');
  expect((await stats(oldToken)).status).toBe(200);
  const fetches = as.jwksFetches.length;
  const kid = await as.rotate();
  const newToken = await accessToken('mcp:master');
  expect(JSON.parse(Buffer.from(newToken.split('.')[0], 'base64url').toString()).kid).toBe(kid);
  expect((await stats(newToken)).status).toBe(200);
  expect(as.jwksFetches.length).toBe(fetches + 1);
  expect((await stats(oldToken)).status).toBe(200);
  // Known kids verify from the cache: no fetch per request.
  expect((await stats(newToken)).status).toBe(200);
  expect(as.jwksFetches.length).toBe(fetches + 1);
});

describe('configuration', () => {
  const base = { JWT_SECRET: 'x'.repeat(32) };
  it('OAUTH_ISSUER needs OAUTH_AUDIENCE', () => {
    expect(() => loadConfig({ ...base, OAUTH_ISSUER: 'https://as.example' })).toThrow(
      /OAUTH_AUDIENCE/,
    );
  });
  it('symmetric or unknown algorithms are refused', () => {
    for (const algorithms of ['HS256', 'RS256,none', '']) {
      expect(() =>
        loadConfig({
          ...base,
          OAUTH_ISSUER: 'https://as.example',
          OAUTH_AUDIENCE: AUDIENCE,
          OAUTH_ALGORITHMS: algorithms,
        }),
      ).toThrow(/OAUTH_ALGORITHMS/);
    }
  });
  it('defaults', () => {
    const config = loadConfig({
      ...base,
      OAUTH_ISSUER: 'https://as.example',
      OAUTH_AUDIENCE: AUDIENCE,
    });
    expect(config.oauth).toEqual({
      issuer: 'https://as.example',
      audience: AUDIENCE,
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      scopeClaims: ['scope'],
      scopePrefix: 'mcp:',
      toolsClaim: 'tools',
      clockToleranceS: 30,
      jwksCooldownMs: 30_000,
      jwksCacheMaxAgeMs: 600_000,
    });
    expect(loadConfig(base).oauth).toBeUndefined();
  });
});
