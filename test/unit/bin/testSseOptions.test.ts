import { parseOptions, UsageError } from '../../../bin/testSse/options';

const env = { MCP_AUTH_TOKEN: 't', SERVER_URL: 'http://gw:3000/' };

test('test-sse options: defaults, every flag (with = or a separate value)', () => {
  expect(parseOptions([], env)).toEqual({
    serverUrl: 'http://gw:3000',
    token: 't',
    raw: false,
    events: null,
    workSteps: 5,
    workDelayMs: 200,
    timeoutMs: 15_000,
  });
  expect(
    parseOptions(['--raw', '--events', 'tool-result, mcp-error', '--steps=3', '--step-ms', '0'], {
      ...env,
      TEST_SSE_TIMEOUT_MS: '500',
    }),
  ).toMatchObject({
    raw: true,
    events: ['tool-result', 'mcp-error'],
    workSteps: 3,
    workDelayMs: 0,
    timeoutMs: 500,
  });
  expect(parseOptions(['--help'], {})).toBe('help');
});

test('test-sse options: each mistake is a usage error that says what is wrong', () => {
  const bad =
    (argv: string[], e: NodeJS.ProcessEnv = env) =>
    () =>
      parseOptions(argv, e);
  expect(bad([], {})).toThrow(
    new UsageError('MCP_AUTH_TOKEN is not set (npm start prints tokens when JWT_SECRET is unset)'),
  );
  expect(bad(['--steps', '21'])).toThrow('--steps needs an integer from 1 to 20 (got 21)');
  expect(bad(['--step-ms'])).toThrow('--step-ms needs an integer from 0 to 2000 (got nothing)');
  expect(bad(['--events', ','])).toThrow('--events needs a comma-separated list');
  expect(bad(['--verbose'])).toThrow('unknown argument "--verbose"');
  expect(bad([], { ...env, TEST_SSE_TIMEOUT_MS: 'soon' })).toThrow(
    'TEST_SSE_TIMEOUT_MS needs an integer from 1 to 3600000 (got soon)',
  );
});
