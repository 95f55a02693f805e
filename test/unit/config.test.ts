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

describe('Redis modes', () => {
  test('REDIS_URL: one server, its password in the URL', () => {
    expect(loadConfig({ POD_ID: 'p' }).redis).toBeUndefined();
    expect(loadConfig({ POD_ID: 'p', REDIS_URL: 'redis://r:6379' }).redis).toEqual({
      kind: 'url',
      url: 'redis://r:6379',
    });
    expect(() =>
      loadConfig({ POD_ID: 'p', REDIS_URL: 'redis://h:6379', REDIS_PASSWORD: 'x' }),
    ).toThrow(
      /REDIS_PASSWORD needs REDIS_CLUSTER_NODES or REDIS_SENTINELS \(a REDIS_URL carries its own password\)/,
    );
  });

  test('REDIS_CLUSTER_NODES: seed nodes of a Redis Cluster, with REDIS_PASSWORD', () => {
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
    const secured = loadConfig({ POD_ID: 'p', REDIS_CLUSTER_NODES: 'a:1', REDIS_PASSWORD: 's' });
    expect(secured.redis).toEqual({
      kind: 'cluster',
      nodes: [{ host: 'a', port: 1 }],
      password: 's',
    });
    expect(Object.isFrozen(secured.redis)).toBe(true);
    // Empty counts as unset (the ConfigMap's default).
    expect(loadConfig({ POD_ID: 'p', REDIS_CLUSTER_NODES: '' }).redis).toBeUndefined();
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000,b' })).toThrow(
      /REDIS_CLUSTER_NODES: "b" is not host:port/,
    );
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:0' })).toThrow(/"a:0" is not host:port/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: ' , ' })).toThrow(
      /REDIS_CLUSTER_NODES lists no host:port/,
    );
  });

  const sentinelEnv = {
    POD_ID: 'p',
    REDIS_SENTINELS: 'sentinel-1:26379, 10.0.0.2:26380,[::1]:26381',
    REDIS_SENTINEL_MASTER: 'mcpgw',
  };

  test('REDIS_SENTINELS is parsed into addresses, with the master name and passwords', () => {
    const config = loadConfig({
      ...sentinelEnv,
      REDIS_PASSWORD: 'data-secret',
      REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
    });
    expect(config.redis).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 'sentinel-1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      masterName: 'mcpgw',
      password: 'data-secret',
      sentinelPassword: 'sentinel-secret',
    });
    expect(Object.isFrozen(config.redis)).toBe(true);
    expect(loadConfig({ POD_ID: 'p', REDIS_SENTINELS: '' }).redis).toBeUndefined();
  });

  test('more than one mode is a start-up error naming the three', () => {
    const url = { REDIS_URL: 'redis://127.0.0.1:6379' };
    const cluster = { REDIS_CLUSTER_NODES: 'a:7000' };
    const modes = /set only one Redis mode: REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS/;
    expect(() => loadConfig({ ...sentinelEnv, ...url })).toThrow(modes);
    expect(() => loadConfig({ ...sentinelEnv, ...url })).toThrow(
      /\(got REDIS_URL and REDIS_SENTINELS\)/,
    );
    expect(() => loadConfig({ ...url, ...cluster })).toThrow(
      /\(got REDIS_URL and REDIS_CLUSTER_NODES\)/,
    );
    expect(() => loadConfig({ ...sentinelEnv, ...cluster })).toThrow(modes);
  });

  test('a bad sentinel list, a missing master name or a stray companion are named', () => {
    for (const bad of ['sentinel-1', 'sentinel-1:', 'h:70000', 'a:1,,b:2', 'h:port']) {
      expect(() => loadConfig({ ...sentinelEnv, REDIS_SENTINELS: bad })).toThrow(
        /REDIS_SENTINELS: ".*" is not host:port/,
      );
    }
    expect(() => loadConfig({ POD_ID: 'p', REDIS_SENTINELS: 'h:1' })).toThrow(
      /REDIS_SENTINELS needs REDIS_SENTINEL_MASTER/,
    );
    expect(() => loadConfig({ POD_ID: 'p', REDIS_SENTINEL_MASTER: 'm' })).toThrow(
      /need REDIS_SENTINELS/,
    );
    expect(() =>
      loadConfig({ POD_ID: 'p', REDIS_CLUSTER_NODES: 'a:1', REDIS_SENTINEL_PASSWORD: 'x' }),
    ).toThrow(/need REDIS_SENTINELS/);
  });
});

test('COMMAND_PARTITIONS: an integer from 1, default 1; anything else is named at start-up', () => {
  expect(loadConfig({}).commandPartitions).toBe(1);
  expect(loadConfig({ COMMAND_PARTITIONS: '6' }).commandPartitions).toBe(6);
  for (const bad of ['0', '-2', '1.5', 'three']) {
    expect(() => loadConfig({ COMMAND_PARTITIONS: bad })).toThrow(
      /^Invalid configuration: COMMAND_PARTITIONS: /,
    );
  }
});
