import {
  paramHeaderDeclarations,
  paramHeaderMismatch,
} from '../../../worker/mcpTransports/paramHeaders';

const schema = {
  type: 'object',
  properties: {
    region: { type: 'string', 'x-mcp-header': 'Region' },
    limits: {
      type: 'object',
      properties: { max: { type: 'integer', 'x-mcp-header': 'Max' } },
    },
    dryRun: { type: 'boolean', 'x-mcp-header': 'Dry-Run' },
    query: { type: 'string' },
  },
};

describe('paramHeaderDeclarations', () => {
  test('declarations reachable through properties, at any depth', () => {
    expect(paramHeaderDeclarations(schema)).toEqual([
      { headerName: 'Region', path: ['region'], type: 'string' },
      { headerName: 'Max', path: ['limits', 'max'], type: 'integer' },
      { headerName: 'Dry-Run', path: ['dryRun'], type: 'boolean' },
    ]);
    expect(paramHeaderDeclarations({ type: 'object', properties: {} })).toEqual([]);
  });

  test.each([
    [
      'under items',
      {
        type: 'object',
        properties: { a: { type: 'array', items: { type: 'string', 'x-mcp-header': 'A' } } },
      },
    ],
    [
      'under anyOf',
      { type: 'object', anyOf: [{ properties: { a: { type: 'string', 'x-mcp-header': 'A' } } }] },
    ],
    [
      'on an object',
      { type: 'object', properties: { a: { type: 'object', 'x-mcp-header': 'A' } } },
    ],
    [
      'not a token',
      { type: 'object', properties: { a: { type: 'string', 'x-mcp-header': 'A B' } } },
    ],
    [
      'twice, ignoring case',
      {
        type: 'object',
        properties: {
          a: { type: 'string', 'x-mcp-header': 'A' },
          b: { type: 'string', 'x-mcp-header': 'a' },
        },
      },
    ],
  ])('an invalid tool definition (%s): undefined', (_case, invalid) => {
    expect(paramHeaderDeclarations(invalid)).toBeUndefined();
  });
});

describe('paramHeaderMismatch', () => {
  const declarations = paramHeaderDeclarations(schema)!;
  const headers = {
    'mcp-param-region': 'us-west1',
    'mcp-param-max': '42',
    'mcp-param-dry-run': 'true',
  };
  const args = { region: 'us-west1', limits: { max: 42 }, dryRun: true, query: 'q' };

  test('headers matching the arguments (plain, base64, numerically) pass', () => {
    expect(paramHeaderMismatch(declarations, args, headers)).toBeUndefined();
    const encoded = {
      ...headers,
      'mcp-param-region': `=?base64?${Buffer.from('us-west1').toString('base64')}?=`,
      'mcp-param-max': '42.0',
    };
    expect(paramHeaderMismatch(declarations, args, encoded)).toBeUndefined();
  });

  test('an argument absent or null needs no header', () => {
    expect(paramHeaderMismatch(declarations, { query: 'q', region: null }, {})).toBeUndefined();
  });

  test.each([
    ['missing', { ...headers, 'mcp-param-region': undefined }],
    ['different', { ...headers, 'mcp-param-max': '43' }],
    ['badly encoded', { ...headers, 'mcp-param-dry-run': '=?base64?dHJ1ZQ?=' }],
  ])('a header %s: -32020 naming it', (_case, bad) => {
    const error = paramHeaderMismatch(declarations, args, bad as Record<string, string>);
    expect(error).toMatchObject({
      code: -32020,
      data: { mismatch: { header: expect.stringMatching(/^Mcp-Param-/) } },
    });
  });
});
