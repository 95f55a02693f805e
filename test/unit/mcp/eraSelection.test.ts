import { GatewayError } from '../../../shared/errors';
import { decodeHeaderValue } from '../../../shared/mcpTransports';
import {
  modernErrorStatus,
  selectEra,
  type StandardHeaders,
} from '../../../gateway/mcpTransports/eraSelection';

const VERSION = '2026-07-28';
const META = {
  'io.modelcontextprotocol/protocolVersion': VERSION,
  'io.modelcontextprotocol/clientCapabilities': { sampling: {} },
};
const HEADERS: StandardHeaders = { protocolVersion: VERSION, method: 'tools/list' };

function rejection(body: unknown, headers: StandardHeaders) {
  try {
    selectEra(body, headers);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    const error = err as GatewayError;
    return { status: error.status, code: error.rpc?.code ?? error.code, data: error.rpc?.data };
  }
  throw new Error('selectEra accepted the request');
}

describe('selectEra', () => {
  test('a request whose _meta names 2026-07-28 is modern, with its capabilities', () => {
    const body = { jsonrpc: '2.0', id: 4, method: 'tools/list', params: { _meta: META } };
    expect(selectEra(body, HEADERS)).toEqual({
      era: 'modern',
      kind: 'request',
      request: {
        id: 4,
        method: 'tools/list',
        params: { _meta: META },
        version: VERSION,
        clientCapabilities: { sampling: {} },
      },
    });
  });

  test.each([
    [
      'initialize',
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25' } },
      {},
    ],
    [
      'a session request',
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      { protocolVersion: '2025-11-25' },
    ],
    ['no version header at all', { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }, {}],
    [
      'a posted response',
      { jsonrpc: '2.0', id: 'srv-1', result: {} },
      { protocolVersion: '2025-11-25' },
    ],
    ['a 2025 batch', [{ jsonrpc: '2.0', id: 1, method: 'ping' }], {}],
    ['a 2025 notification', { jsonrpc: '2.0', method: 'notifications/initialized' }, {}],
    ['a body that is no JSON-RPC message', 'text', {}],
  ])('%s stays with the 2025 transport', (_case, body, headers) => {
    expect(selectEra(body, headers)).toEqual({ era: 'legacy' });
  });

  test('a 2026 notification is modern (accepted and dropped by the route)', () => {
    const body = { jsonrpc: '2.0', method: 'notifications/initialized', params: { _meta: META } };
    expect(selectEra(body, { protocolVersion: VERSION })).toEqual({
      era: 'modern',
      kind: 'notification',
    });
  });

  test('an initialize carrying a valid 2026 envelope is a 2026 request (answered method not found)', () => {
    const body = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { _meta: META } };
    const selected = selectEra(body, { ...HEADERS, method: 'initialize' });
    expect(selected).toMatchObject({ era: 'modern', request: { method: 'initialize' } });
  });

  test('initialize with a 2026 MCP-Protocol-Version header: -32020', () => {
    const body = { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} };
    expect(rejection(body, { protocolVersion: VERSION })).toMatchObject({
      status: 400,
      code: -32020,
    });
  });

  test('unsupported version: 400 -32022 with supported and requested', () => {
    const meta = { ...META, 'io.modelcontextprotocol/protocolVersion': '2030-01-01' };
    const body = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: meta } };
    const { status, code, data } = rejection(body, { ...HEADERS, protocolVersion: '2030-01-01' });
    expect({ status, code }).toEqual({ status: 400, code: -32022 });
    expect(data).toEqual({
      supported: ['2026-07-28', '2025-11-25', '2025-06-18', '2025-03-26'],
      requested: '2030-01-01',
    });
  });

  test('a 2025 version named in _meta is no way to speak 2025 (sessions need initialize): -32022', () => {
    const meta = { ...META, 'io.modelcontextprotocol/protocolVersion': '2025-11-25' };
    const body = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: meta } };
    expect(rejection(body, { ...HEADERS, protocolVersion: '2025-11-25' }).code).toBe(-32022);
  });

  test.each([
    ['version header differs from _meta', { ...HEADERS, protocolVersion: '2025-11-25' }],
    ['version header missing', { method: 'tools/list' }],
    ['Mcp-Method differs', { ...HEADERS, method: 'tools/call' }],
    ['Mcp-Method missing', { protocolVersion: VERSION }],
  ])('%s: 400 -32020', (_case, headers) => {
    const body = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } };
    expect(rejection(body, headers)).toMatchObject({ status: 400, code: -32020 });
  });

  test('header values are compared without surrounding whitespace', () => {
    const body = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } };
    expect(selectEra(body, { protocolVersion: ` ${VERSION}\t`, method: ' tools/list ' }).era).toBe(
      'modern',
    );
  });

  describe('Mcp-Name', () => {
    const call = (name: string) => ({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name, arguments: {}, _meta: META },
    });
    const headers = (name?: string): StandardHeaders => ({
      protocolVersion: VERSION,
      method: 'tools/call',
      name,
    });

    test('matching, plain or base64-encoded', () => {
      expect(selectEra(call('get_weather'), headers('get_weather')).era).toBe('modern');
      const encoded = `=?base64?${Buffer.from('天気').toString('base64')}?=`;
      expect(selectEra(call('天気'), headers(encoded)).era).toBe('modern');
    });

    test.each([
      ['missing', undefined],
      ['another name', 'other'],
      ['a malformed encoding', '=?base64?not base64!?='],
    ])('%s: -32020', (_case, name) => {
      expect(rejection(call('get_weather'), headers(name)).code).toBe(-32020);
    });

    test('resources/read mirrors params.uri', () => {
      const body = {
        jsonrpc: '2.0',
        id: 1,
        method: 'resources/read',
        params: { uri: 'file:///a', _meta: META },
      };
      const base = { protocolVersion: VERSION, method: 'resources/read' };
      expect(selectEra(body, { ...base, name: 'file:///a' }).era).toBe('modern');
      expect(rejection(body, { ...base, name: 'file:///b' }).code).toBe(-32020);
    });
  });

  test.each([
    ['no _meta', {}],
    ['_meta without the version', { _meta: { 'io.modelcontextprotocol/clientCapabilities': {} } }],
  ])('a 2026 header with %s: 400 -32602 naming what is missing', (_case, params) => {
    const body = { jsonrpc: '2.0', id: 1, method: 'server/discover', params };
    const { status, code, data } = rejection(body, {
      protocolVersion: VERSION,
      method: 'server/discover',
    });
    expect({ status, code }).toEqual({ status: 400, code: -32602 });
    expect(data).toHaveProperty('envelope.missing');
  });

  test.each([
    ['clientCapabilities missing', { 'io.modelcontextprotocol/protocolVersion': VERSION }],
    [
      'clientCapabilities not an object',
      { ...META, 'io.modelcontextprotocol/clientCapabilities': [] },
    ],
    ['a version that is no string', { ...META, 'io.modelcontextprotocol/protocolVersion': 7 }],
    [
      'clientInfo without a version',
      { ...META, 'io.modelcontextprotocol/clientInfo': { name: 'x' } },
    ],
    ['an unknown log level', { ...META, 'io.modelcontextprotocol/logLevel': 'loud' }],
  ])('an invalid envelope (%s): 400 -32602', (_case, meta) => {
    const body = { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: meta } };
    expect(rejection(body, HEADERS)).toMatchObject({ status: 400, code: -32602 });
  });

  test('a batch holding a 2026 request: an invalid request (-32600)', () => {
    const body = [{ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } }];
    expect(rejection(body, {})).toMatchObject({ status: 400, code: 'invalid_request' });
  });
});

describe('decodeHeaderValue', () => {
  test('plain values pass; the base64 form is decoded; a broken one is undefined', () => {
    expect(decodeHeaderValue('us-west1')).toBe('us-west1');
    expect(decodeHeaderValue('=?base64?SGVsbG8sIOS4lueVjA==?=')).toBe('Hello, 世界');
    expect(decodeHeaderValue('=?base64?SGVsbG8?=')).toBeUndefined();
  });
});

describe('modernErrorStatus', () => {
  test('the statuses the spec gives errors; the rest are the request outcome, 200', () => {
    expect(modernErrorStatus(-32601)).toBe(404);
    expect(modernErrorStatus(-32021)).toBe(400);
    expect(modernErrorStatus(-32020)).toBe(400);
    expect(modernErrorStatus(-32022)).toBe(400);
    expect(modernErrorStatus(-32602)).toBe(200);
    expect(modernErrorStatus(-32011)).toBe(200);
  });
});
