/** loadConfig: the schema's output is the config; parsing has no side effect such as a secret. */
import { loadConfig } from '../../shared/config';

test('parsing makes no secret: without JWT_SECRET or JWT_PUBLIC_KEY the config has no key', () => {
  const config = loadConfig({ POD_ID: 'p' });
  expect(config.jwtSecret).toBeUndefined();
  expect(config.jwtPublicKey).toBeUndefined();
  expect(loadConfig({ POD_ID: 'p' })).toEqual(config);
});

test('settings get the names the code reads, lists split, and the result is frozen', () => {
  const config = loadConfig({
    PORT: '8080',
    JWT_SECRET: 'x'.repeat(32),
    ALLOWED_ORIGINS: 'https://a.example, https://b.example,',
    TRUST_PROXY: '2',
  });
  expect(config).toMatchObject({
    port: 8080,
    jwtSecret: 'x'.repeat(32),
    allowedOrigins: ['https://a.example', 'https://b.example'],
    trustProxy: 2,
    oauth: undefined,
  });
  expect(Object.isFrozen(config)).toBe(true);
  expect(Object.isFrozen(config.allowedOrigins)).toBe(true);
});

test('a bad setting and a bad pair of settings are named in one error', () => {
  expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/^Invalid configuration: PORT: /);
  expect(() => loadConfig({ OAUTH_AUDIENCE: 'https://gw.example/mcp' })).toThrow(
    'Invalid configuration: OAUTH_AUDIENCE and OAUTH_JWKS_URL need OAUTH_ISSUER',
  );
});

test('SSE_BATCH_MS: off (0) by default, a window in ms when set, never negative', () => {
  expect(loadConfig({ POD_ID: 'p' }).sseBatchMs).toBe(0);
  expect(loadConfig({ POD_ID: 'p', SSE_BATCH_MS: '5' }).sseBatchMs).toBe(5);
  expect(() => loadConfig({ SSE_BATCH_MS: '-1' })).toThrow(
    /^Invalid configuration: SSE_BATCH_MS: /,
  );
});

test('MCP_SERVER_MODULE: unset or empty means the backlog, else the path as given', () => {
  expect(loadConfig({ POD_ID: 'p' }).mcpServerModule).toBeUndefined();
  expect(loadConfig({ POD_ID: 'p', MCP_SERVER_MODULE: '' }).mcpServerModule).toBeUndefined();
  expect(
    loadConfig({ POD_ID: 'p', MCP_SERVER_MODULE: 'examples/echo-server.mjs' }).mcpServerModule,
  ).toBe('examples/echo-server.mjs');
});

test('REDIS_CLUSTER_NODES: seed nodes of a Redis Cluster, never together with REDIS_URL', () => {
  expect(loadConfig({ POD_ID: 'p' }).redis).toBeUndefined();
  expect(loadConfig({ POD_ID: 'p', REDIS_URL: 'redis://r:6379' }).redis).toEqual({
    kind: 'url',
    url: 'redis://r:6379',
  });
  expect(
    loadConfig({ POD_ID: 'p', REDIS_CLUSTER_NODES: 'a:7000, b:7001,[::1]:7002' }).redis,
  ).toEqual({
    kind: 'cluster',
    nodes: [
      { host: 'a', port: 7000 },
      { host: 'b', port: 7001 },
      { host: '::1', port: 7002 },
    ],
  });
  // Empty counts as unset (the ConfigMap's default).
  expect(loadConfig({ POD_ID: 'p', REDIS_CLUSTER_NODES: '' }).redis).toBeUndefined();
  expect(() => loadConfig({ REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'a:7000' })).toThrow(
    /Set only one Redis mode, not REDIS_URL and REDIS_CLUSTER_NODES/,
  );
  expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000,b' })).toThrow(
    /REDIS_CLUSTER_NODES: "b" is not host:port/,
  );
  expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:0' })).toThrow(/"a:0" is not host:port/);
});
