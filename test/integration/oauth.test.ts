/**
 * Issue 17 on real processes: two gateway pods and a worker on a real Redis, behind the
 * round-robin proxy, accepting the access tokens of a real authorization server
 * (oauth2-mock-server in this process). The MCP SDK client finds the authorization server
 * through the gateway's 401 and protected resource metadata, gets a client-credentials token
 * for the gateway's resource and works across both pods; refusals, rotation and the readonly
 * scope on all three paths. Processes run the compiled dist/ (make builds it).
 */
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { createPublicKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { RPC_ERRORS } from '../../shared/protocol';
import { startAuthServer, type AuthServer } from '../helpers/authServer';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { freePort } from '../../devSupport/ports';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';
import { scrapeMetric } from '../helpers/scrape';
import { openSseClient, type SseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'oauth-cluster-secret-0123456789abcdef';
/** Short, so that the rotation test waits little for the pods to fetch the JWKS again. */
const JWKS_COOLDOWN_MS = 1000;
const PERMISSION_DENIED = RPC_ERRORS.permissionDenied;

let as: AuthServer;
let otherAs: AuthServer;
let cluster: TestCluster;
let proxy: RoundRobinProxy;
/** The gateway's resource URI: the proxy's /mcp, what clients connect to. */
let audience: string;
let metadataUrl: string;
const clients: Client[] = [];
const streams: SseClient[] = [];
/** Every token the test handled, to check that no log holds one. */
const issued: string[] = [];

beforeAll(async () => {
  [as, otherAs] = await Promise.all([startAuthServer(), startAuthServer()]);
  const proxyPort = await freePort();
  audience = `http://127.0.0.1:${proxyPort}/mcp`;
  metadataUrl = `http://127.0.0.1:${proxyPort}/.well-known/oauth-protected-resource/mcp`;
  cluster = await startCluster('oauth', {
    gateways: 2,
    workers: 1,
    jwtSecret: SECRET,
    env: {
      OAUTH_ISSUER: as.url,
      OAUTH_AUDIENCE: audience,
      OAUTH_JWKS_COOLDOWN_MS: String(JWKS_COOLDOWN_MS),
      // Every request logged: the check below that no log line holds a token means something.
      LOG_LEVEL: 'debug',
    },
  });
  proxy = await startRoundRobinProxy(
    cluster.gateways.map((g) => g.url),
    { port: proxyPort },
  );
}, 60_000);

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

afterAll(async () => {
  await proxy?.close();
  await cluster?.stop();
  await Promise.all([as?.close(), otherAs?.close()]);
});

/** A client-credentials provider that remembers the tokens it got. */
function credentials(clientId: string, scope: string): ClientCredentialsProvider {
  const provider = new ClientCredentialsProvider({
    clientId,
    clientSecret: `${clientId}-secret`,
    scope,
    expectedIssuer: as.url,
  });
  const save = provider.saveTokens.bind(provider);
  provider.saveTokens = (tokens) => {
    issued.push(tokens.access_token);
    save(tokens);
  };
  return provider;
}

async function connectStreamable(provider: ClientCredentialsProvider): Promise<Client> {
  const client = new Client({ name: 'oauth-test', version: '1.0.0' });
  clients.push(client);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(audience), { authProvider: provider }),
  );
  return client;
}

const token = async (claims: Record<string, unknown>, options?: { kid?: string }) => {
  const t = await as.token({ sub: 'tester', aud: audience, ...claims }, options);
  issued.push(t);
  return t;
};

/** POST /mcp initialize through the proxy with this token. */
const initialize = (bearer: string) =>
  fetch(audience, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${bearer}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'raw', version: '1' },
      },
    }),
  });

const failures = async (reason: string) => {
  let sum = 0;
  for (const g of cluster.gateways) {
    sum += await scrapeMetric(g.url, 'mcpgw_auth_failures_total', `reason="${reason}"`);
  }
  return sum;
};

test('the SDK client finds the authorization server through the 401, gets a token for this resource and works across both pods', async () => {
  const provider = credentials('agent-team', 'mcp:team');
  const client = await connectStreamable(provider);
  const accessToken = provider.tokens()?.access_token as string;
  const claims = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString());
  // RFC 8707: the token was asked for, and issued to, this gateway's resource.
  expect(claims).toMatchObject({ aud: audience, iss: as.url, scope: 'mcp:team' });
  expect(proxy.log.some((r) => r.path === '/.well-known/oauth-protected-resource/mcp')).toBe(true);

  const before = proxy.log.length;
  const tools = await client.listTools();
  expect(tools.tools.map((t) => t.name)).toEqual(expect.arrayContaining(['create_project']));
  const created = await client.callTool({
    name: 'create_project',
    arguments: { name: 'oauth-project' },
  });
  expect(created.isError).toBeFalsy();
  const listed = await client.callTool({ name: 'list_projects', arguments: {} });
  expect(JSON.stringify(listed)).toContain('oauth-project');
  const targets = new Set(proxy.log.slice(before).map((r) => r.target));
  expect(targets).toEqual(new Set([0, 1]));
});

test('refusals on both pods, each with its status and challenge', async () => {
  const { keys } = (await (await fetch(`${as.url}/jwks`)).json()) as { keys: object[] };
  const publicPem = createPublicKey({ key: keys[0], format: 'jwk' } as never)
    .export({ type: 'spki', format: 'pem' })
    .toString();
  const otherIssuer = await otherAs.token({ sub: 'x', aud: audience, scope: 'mcp:team' });
  const cases: Array<[string, string, number, string]> = [
    [
      'another audience',
      await token({ scope: 'mcp:team', aud: 'https://another-resource.example/mcp' }),
      401,
      'audience',
    ],
    ['another issuer', otherIssuer, 401, 'issuer'],
    [
      'expired',
      await token({ scope: 'mcp:team', exp: Math.floor(Date.now() / 1000) - 120 }),
      401,
      'expired',
    ],
    ['no mcp scope', await token({ scope: 'openid email' }), 403, 'scope'],
    [
      'alg confusion',
      jwt.sign({ iss: as.url, aud: audience, sub: 'x', scope: 'mcp:master' }, publicPem, {
        algorithm: 'HS256',
        expiresIn: 300,
      }),
      401,
      'signature',
    ],
  ];
  for (const [name, bearer, status, reason] of cases) {
    const before = await failures(reason);
    // Twice: the round-robin proxy sends one to each pod.
    for (let i = 0; i < 2; i++) {
      const res = await initialize(bearer);
      expect({ name, status: res.status }).toEqual({ name, status });
      const challenge = res.headers.get('www-authenticate');
      expect({ name, challenge }).toEqual({
        name,
        challenge:
          status === 401
            ? `Bearer error="invalid_token", resource_metadata="${metadataUrl}"`
            : `Bearer error="insufficient_scope", scope="mcp:readonly", resource_metadata="${metadataUrl}"`,
      });
    }
    expect({ name, counted: await failures(reason) }).toEqual({ name, counted: before + 2 });
  }
});

test('key rotation mid-test: the new key works on both pods without a restart, old tokens keep working', async () => {
  const provider = credentials('agent-rotation', 'mcp:team');
  const client = await connectStreamable(provider);
  const oldToken = await token({ scope: 'mcp:master' });
  for (let i = 0; i < 2; i++) expect((await initialize(oldToken)).status).toBe(200);

  const kid = await as.rotate();
  const newToken = await token({ scope: 'mcp:master' }, { kid });
  // A pod refetches the JWKS for an unknown kid at most once per cooldown after its last fetch.
  const lastFetch = as.jwksFetches[as.jwksFetches.length - 1];
  await waitFor(() => Date.now() > lastFetch + JWKS_COOLDOWN_MS, 2 * JWKS_COOLDOWN_MS);
  const fetches = as.jwksFetches.length;
  const byPod = new Set<number>();
  for (let i = 0; i < 2; i++) {
    const res = await initialize(newToken);
    expect(res.status).toBe(200);
    byPod.add(proxy.log[proxy.log.length - 1].target);
  }
  expect(byPod).toEqual(new Set([0, 1]));
  expect(as.jwksFetches.length).toBe(fetches + 2);

  // The SDK client's session, on its token of the old key, goes on across both pods.
  for (let i = 0; i < 2; i++) {
    expect((await client.callTool({ name: 'list_projects', arguments: {} })).isError).toBeFalsy();
  }
  for (let i = 0; i < 2; i++) expect((await initialize(oldToken)).status).toBe(200);
});

/** A readonly client: a writing tool is refused with the permission error, a reading one runs. */
async function expectWritesRefused(client: Client): Promise<void> {
  const refused = await client
    .callTool({ name: 'create_project', arguments: { name: 'nope' } })
    .catch((err: unknown) => err);
  expect(refused).toBeInstanceOf(McpError);
  expect((refused as McpError).code).toBe(PERMISSION_DENIED);
  expect((await client.callTool({ name: 'list_projects', arguments: {} })).isError).toBeFalsy();
}

describe('a readonly-scope token cannot call write tools, on all three paths', () => {
  it('Streamable HTTP (/mcp)', async () => {
    const client = await connectStreamable(credentials('agent-readonly', 'mcp:readonly'));
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toContain('list_projects');
    expect(tools).not.toContain('create_project');
    await expectWritesRefused(client);
  });

  it('legacy SSE (/sse + /messages)', async () => {
    // The SDK takes /sse to be another resource than OAUTH_AUDIENCE (.../mcp), so this client
    // is given its token (README: an origin as OAUTH_AUDIENCE covers /sse discovery too).
    const readonly = await token({ scope: 'mcp:readonly' });
    const client = new Client({ name: 'oauth-legacy', version: '1.0.0' });
    clients.push(client);
    await client.connect(
      new SSEClientTransport(new URL(`${proxy.url}/sse`), {
        requestInit: { headers: { Authorization: `Bearer ${readonly}` } },
      }),
    );
    await expectWritesRefused(client);
  });

  it('seed API (/mcp/sse + /mcp/sse/send)', async () => {
    const readonly = await token({ scope: 'mcp:readonly' });
    const stream = await openSseClient(proxy.url, readonly);
    streams.push(stream);
    const res = await fetch(`${proxy.url}/mcp/sse/send`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${readonly}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        connectionId: stream.connectionId,
        message: {
          id: 'w1',
          method: 'tools/call',
          params: { name: 'create_project', arguments: { name: 'nope' } },
        },
      }),
    });
    expect(res.status).toBe(202);
    const error = await stream.next((e) => e.event === 'mcp-error');
    expect(JSON.stringify(error.json)).toContain(String(PERMISSION_DENIED));
    // And a master-only route answers 403 insufficient_scope naming mcp:master.
    const broadcast = await fetch(`${proxy.url}/mcp/sse/broadcast`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${readonly}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: { method: 'notifications/message' } }),
    });
    expect(broadcast.status).toBe(403);
    expect(broadcast.headers.get('www-authenticate')).toBe(
      `Bearer error="insufficient_scope", scope="mcp:master", resource_metadata="${metadataUrl}"`,
    );
  });
});

test('no process logged a token', () => {
  expect(issued.length).toBeGreaterThan(5);
  const output = [...cluster.gateways, ...cluster.workers].map((p) => p.output()).join('\n');
  expect(output.length).toBeGreaterThan(0);
  for (const t of issued) expect(output).not.toContain(t.split('.')[2]);
});
