/**
 * InputRequiredRound (worker/server/inputRequired.ts): real SDK 1.x McpServers whose handlers
 * call elicitInput / createMessage / listRoots, run the MCP 2026-07-28 way. A small harness
 * joins the server to an InMemoryTransport pair, hands every request the server sends to the
 * round and feeds the round's answers back as JSON-RPC responses, as the worker does.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  ElicitResultSchema,
  type JSONRPCMessage,
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import {
  INPUT_KEY_META,
  InputRequiredRound,
  REQUEST_STATE_TTL_MS,
  ROUND_SERVER_CLIENT_CAPABILITIES,
  RoundError,
  type InputRequiredRoundOptions,
} from '../../../worker/server/inputRequired';
import { registerInputRequiredFixtures } from '../../conformance/inputRequiredFixtures';

const SECRET = 'input-required-test-secret';
const ALL_CAPABILITIES = { elicitation: {}, sampling: {}, roots: { listChanged: true } };

type Result = Record<string, unknown>;
type Options = Partial<Omit<InputRequiredRoundOptions, 'method' | 'params'>>;

interface Harness {
  /** One client request through a fresh round: its final answer (or the RoundError). */
  call(method: string, params: Result, options?: Options): Promise<Result>;
  close(): Promise<void>;
}

/** A 1.x server behind a round, as the worker runs it (initialized with every capability). */
async function serve(register: (server: McpServer) => void): Promise<Harness> {
  const server = new McpServer({ name: 'round-test', version: '1.0.0' });
  register(server);
  const [client, serverSide] = InMemoryTransport.createLinkedPair();
  const replies = new Map<RequestId, (message: JSONRPCMessage) => void>();
  // The round of each running request, by its id; a server request names the request it belongs
  // to (relatedRequestId) when its handler passed it; else the handler's async context tells
  // (the request is delivered inside the round's context, which the SDK's handler call keeps).
  const rounds = new Map<RequestId, InputRequiredRound>();
  const context = new AsyncLocalStorage<InputRequiredRound>();
  const relatedOf = new Map<RequestId, RequestId | undefined>();
  const sendFromServer = serverSide.send.bind(serverSide);
  serverSide.send = (message, options) => {
    if ('method' in message && 'id' in message)
      relatedOf.set(message.id, options?.relatedRequestId);
    return sendFromServer(message, options);
  };
  client.onmessage = (message) => {
    if ('method' in message && 'id' in message) {
      // The server asks the client: the round answers, or leaves it pending.
      const id = message.id;
      const related = relatedOf.get(id);
      relatedOf.delete(id);
      const asking = related === undefined ? context.getStore() : rounds.get(related);
      if (!asking) throw new Error(`server request outside a round: ${message.method}`);
      asking.request({ method: message.method, params: message.params }).then(
        (result) => void client.send({ jsonrpc: '2.0', id, result }),
        (error: RoundError) =>
          void client.send({
            jsonrpc: '2.0',
            id,
            error: { code: error.code, message: error.message, data: error.data },
          }),
      );
      return;
    }
    if ('id' in message && message.id !== undefined) replies.get(message.id)?.(message);
  };
  let nextId = 1;
  const rpc = (method: string, params: Result, round?: InputRequiredRound): Promise<Result> => {
    const id = nextId++;
    if (round) rounds.set(id, round);
    const reply = new Promise<Result>((resolve, reject) => {
      replies.set(id, (message) => {
        replies.delete(id);
        rounds.delete(id);
        if ('result' in message) resolve(message.result);
        else if ('error' in message) reject(message.error);
      });
    });
    void client.send({ jsonrpc: '2.0', id, method, params });
    return reply;
  };
  await server.connect(serverSide);
  await client.start();
  await rpc('initialize', {
    protocolVersion: '2025-11-25',
    capabilities: ROUND_SERVER_CLIENT_CAPABILITIES,
    clientInfo: { name: 'round-test-client', version: '1.0.0' },
  });
  await client.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return {
    async call(method, params, options = {}) {
      const round = new InputRequiredRound({
        secret: SECRET,
        clientCapabilities: ALL_CAPABILITIES,
        ...options,
        method,
        params,
      });
      const serverParams = round.serverParams();
      const reply = context.run(round, () => rpc(method, serverParams, round));
      try {
        return await round.settle(reply);
      } finally {
        // The handler has unwound (answered, or its pending requests rejected) before the next.
        await reply.catch(() => undefined);
      }
    },
    close: () => server.close(),
  };
}

/** The RoundError a call fails with. */
async function failure(answer: Promise<unknown>): Promise<RoundError> {
  try {
    await answer;
  } catch (error) {
    expect(error).toBeInstanceOf(RoundError);
    return error as RoundError;
  }
  throw new Error('expected the call to fail');
}

const accept = (content: Result) => ({ action: 'accept', content });
const sampled = (text: string) => ({
  role: 'assistant',
  content: { type: 'text', text },
  model: 'test-model',
  stopReason: 'endTurn',
});
const rootsResult = { roots: [{ uri: 'file:///work', name: 'work' }] };
const textOf = (result: Result) =>
  (result.content as { type: string; text: string }[]).map((c) => c.text).join('\n');
const inputRequests = (result: Result) =>
  result.inputRequests as Record<string, { method: string; params: Result }>;

describe('InputRequiredRound with a 1.x McpServer', () => {
  let harness: Harness;
  /** How many times each handler ran. */
  const runs = new Map<string, number>();
  const ran = (name: string) => runs.set(name, (runs.get(name) ?? 0) + 1);
  /** Told the error code the fire_and_forget tool's unanswered question got. */
  let onForgotten: (code: number) => void = () => undefined;

  beforeAll(async () => {
    harness = await serve((server) => {
      const elicitName = (extra: { requestId: RequestId }, key?: string) =>
        server.server.elicitInput(
          {
            message: 'What is your name?',
            requestedSchema: {
              type: 'object',
              properties: { name: { type: 'string' } },
              required: ['name'],
            },
            ...(key && { _meta: { [INPUT_KEY_META]: key } }),
          },
          { relatedRequestId: extra.requestId },
        );
      server.registerTool(
        'greet',
        { inputSchema: { greeting: z.string().optional() } },
        async ({ greeting }, extra) => {
          ran('greet');
          const answer = await elicitName(extra, 'user_name');
          return {
            content: [{ type: 'text', text: `${greeting ?? 'Hello'}, ${answer.content?.name}!` }],
          };
        },
      );
      // Three requests at once, keys unnamed (the defaults).
      server.registerTool('ask_all', {}, async (extra) => {
        ran('ask_all');
        const [name, llm, roots] = await Promise.all([
          elicitName(extra),
          server.server.createMessage({
            messages: [{ role: 'user', content: { type: 'text', text: 'Greet' } }],
            maxTokens: 10,
          }),
          server.server.listRoots(),
        ]);
        const llmContent = llm.content as { text: string };
        return {
          content: [
            {
              type: 'text',
              text: `${llmContent.text} ${name.content?.name}, roots ${roots.roots.map((r) => r.uri).join(',')}`,
            },
          ],
        };
      });
      // One question after the other, twice the same unnamed method.
      server.registerTool('two_steps', {}, async (extra) => {
        ran('two_steps');
        const first = await elicitName(extra);
        const second = await extra.sendRequest(
          {
            method: 'elicitation/create',
            params: {
              message: 'Favorite color?',
              requestedSchema: {
                type: 'object',
                properties: { color: { type: 'string' } },
                required: ['color'],
              },
            },
          },
          ElicitResultSchema,
        );
        return {
          content: [
            { type: 'text', text: `${first.content?.name} likes ${second.content?.color}` },
          ],
        };
      });
      // Degrades: asks by elicitation and by sampling, each if the client supports it.
      server.registerTool('ask_what_you_can', {}, async (extra) => {
        ran('ask_what_you_can');
        const [name, llm] = await Promise.allSettled([
          elicitName(extra, 'name'),
          server.server.createMessage(
            {
              messages: [{ role: 'user', content: { type: 'text', text: 'Weather?' } }],
              maxTokens: 10,
              _meta: { [INPUT_KEY_META]: 'weather' },
            },
            { relatedRequestId: extra.requestId },
          ),
        ]);
        const describe = (outcome: PromiseSettledResult<unknown>) =>
          outcome.status === 'fulfilled'
            ? JSON.stringify(outcome.value)
            : `refused ${(outcome.reason as { code: number }).code}`;
        return { content: [{ type: 'text', text: `${describe(name)} | ${describe(llm)}` }] };
      });
      // Two requests at once, the second a few event-loop turns after the first.
      server.registerTool('staggered', {}, async (extra) => {
        const turn = () => new Promise((resolve) => setImmediate(resolve));
        const [a, b] = await Promise.all([
          elicitName(extra, 'a'),
          turn()
            .then(turn)
            .then(() => elicitName(extra, 'b')),
        ]);
        return { content: [{ type: 'text', text: `${a.content?.name} ${b.content?.name}` }] };
      });
      // Asks without waiting for the answer, and returns.
      server.registerTool('fire_and_forget', {}, (extra) => {
        elicitName(extra, 'ignored').catch((error: { code: number }) => onForgotten(error.code));
        return { content: [{ type: 'text', text: 'done without waiting' }] };
      });
      server.registerTool('ping_client', {}, async (extra) => {
        await extra.sendRequest({ method: 'ping' }, z.object({}));
        return { content: [{ type: 'text', text: 'pinged' }] };
      });
      server.registerPrompt('ask_context', { argsSchema: {} }, async (_args, extra) => {
        ran('ask_context');
        const answer = await elicitName(extra, 'context');
        return {
          messages: [
            { role: 'user', content: { type: 'text', text: `About ${answer.content?.name}` } },
          ],
        };
      });
      // resources/list may not ask the client (its list callback tries); resources/read may.
      server.registerResource(
        'people',
        new ResourceTemplate('people://{id}', {
          list: async (extra) => {
            await elicitName(extra);
            return { resources: [] };
          },
        }),
        {},
        async (uri, _vars, extra) => {
          const answer = await elicitName(extra, 'reader');
          return { contents: [{ uri: uri.href, text: `read by ${answer.content?.name}` }] };
        },
      );
    });
  });

  afterAll(() => harness.close());

  test('a single elicitation: input_required with its key, then the result', async () => {
    const first = await harness.call('tools/call', { name: 'greet', arguments: {} });
    expect(first.resultType).toBe('input_required');
    expect(inputRequests(first)).toEqual({
      user_name: {
        method: 'elicitation/create',
        params: {
          mode: 'form',
          message: 'What is your name?',
          requestedSchema: {
            type: 'object',
            properties: { name: { type: 'string' } },
            required: ['name'],
          },
        },
      },
    });
    expect(typeof first.requestState).toBe('string');
    const second = await harness.call('tools/call', {
      name: 'greet',
      arguments: {},
      inputResponses: { user_name: accept({ name: 'Alice' }) },
      requestState: first.requestState,
    });
    expect(second.resultType).toBe('complete');
    expect(textOf(second)).toBe('Hello, Alice!');
  });

  test('answers without a requestState are taken; keys not asked for are ignored', async () => {
    const result = await harness.call('tools/call', {
      name: 'greet',
      arguments: { greeting: 'Hi' },
      inputResponses: {
        user_name: accept({ name: 'Bob' }),
        unknown_extra_key: accept({ foo: 'bar' }),
        another: { roots: [] },
      },
    });
    expect(textOf(result)).toBe('Hi, Bob!');
  });

  test('a key asked for and not answered is asked again', async () => {
    const first = await harness.call('tools/call', {
      name: 'greet',
      arguments: {},
      inputResponses: { wrong_key: accept({ data: 'wrong' }) },
    });
    expect(first.resultType).toBe('input_required');
    expect(Object.keys(inputRequests(first))).toEqual(['user_name']);
    const again = await harness.call('tools/call', {
      name: 'greet',
      arguments: {},
      requestState: first.requestState,
    });
    expect(Object.keys(inputRequests(again))).toEqual(['user_name']);
  });

  test('requests sent together are asked together, under default keys', async () => {
    const first = await harness.call('tools/call', { name: 'ask_all', arguments: {} });
    expect(first.resultType).toBe('input_required');
    const asked = inputRequests(first);
    expect(Object.keys(asked)).toEqual(['elicitation-1', 'sampling-1', 'roots-1']);
    expect(asked['sampling-1'].method).toBe('sampling/createMessage');
    expect(asked['roots-1']).toEqual({ method: 'roots/list', params: {} });

    // Two of three answered: only the third is asked again; the state keeps the two.
    const partial = await harness.call('tools/call', {
      name: 'ask_all',
      arguments: {},
      inputResponses: { 'elicitation-1': accept({ name: 'Ada' }), 'sampling-1': sampled('Hey') },
      requestState: first.requestState,
    });
    expect(Object.keys(inputRequests(partial))).toEqual(['roots-1']);
    expect(partial.requestState).not.toBe(first.requestState);
    const done = await harness.call('tools/call', {
      name: 'ask_all',
      arguments: {},
      inputResponses: { 'roots-1': rootsResult },
      requestState: partial.requestState,
    });
    expect(textOf(done)).toBe('Hey Ada, roots file:///work');
  });

  test('requests sent a couple of event-loop turns apart are still asked together', async () => {
    const first = await harness.call('tools/call', { name: 'staggered', arguments: {} });
    expect(Object.keys(inputRequests(first))).toEqual(['a', 'b']);
  });

  test('sequential requests take one round each; earlier answers ride in requestState', async () => {
    runs.delete('two_steps');
    const first = await harness.call('tools/call', { name: 'two_steps', arguments: {} });
    expect(Object.keys(inputRequests(first))).toEqual(['elicitation-1']);
    const second = await harness.call('tools/call', {
      name: 'two_steps',
      arguments: {},
      inputResponses: { 'elicitation-1': accept({ name: 'Ada' }) },
      requestState: first.requestState,
    });
    expect(Object.keys(inputRequests(second))).toEqual(['elicitation-2']);
    expect(inputRequests(second)['elicitation-2'].params.message).toBe('Favorite color?');
    expect(second.requestState).not.toBe(first.requestState);
    const third = await harness.call('tools/call', {
      name: 'two_steps',
      arguments: {},
      inputResponses: { 'elicitation-2': accept({ color: 'blue' }) },
      requestState: second.requestState,
    });
    expect(textOf(third)).toBe('Ada likes blue');
    expect(runs.get('two_steps')).toBe(3);
  });

  test("an earlier round's answer stands: the retry cannot change it", async () => {
    const first = await harness.call('tools/call', { name: 'two_steps', arguments: {} });
    const second = await harness.call('tools/call', {
      name: 'two_steps',
      arguments: {},
      inputResponses: { 'elicitation-1': accept({ name: 'Ada' }) },
      requestState: first.requestState,
    });
    const third = await harness.call('tools/call', {
      name: 'two_steps',
      arguments: {},
      inputResponses: {
        'elicitation-1': accept({ name: 'Mallory' }),
        'elicitation-2': accept({ color: 'red' }),
      },
      requestState: second.requestState,
    });
    expect(textOf(third)).toBe('Ada likes red');
  });

  test("a handler's result ends the round; a question it did not wait for is cancelled", async () => {
    const forgotten = new Promise<number>((resolve) => {
      onForgotten = resolve;
    });
    const result = await harness.call('tools/call', { name: 'fire_and_forget', arguments: {} });
    expect(result.resultType).toBe('complete');
    expect(textOf(result)).toBe('done without waiting');
    expect(await forgotten).toBe(-32800);
  });

  test('prompts/get and resources/read ask too', async () => {
    const first = await harness.call('prompts/get', { name: 'ask_context' });
    expect(Object.keys(inputRequests(first))).toEqual(['context']);
    const done = await harness.call('prompts/get', {
      name: 'ask_context',
      inputResponses: { context: accept({ name: 'billing' }) },
      requestState: first.requestState,
    });
    expect(done.messages).toEqual([
      { role: 'user', content: { type: 'text', text: 'About billing' } },
    ]);

    const read = await harness.call('resources/read', { uri: 'people://1' });
    expect(Object.keys(inputRequests(read))).toEqual(['reader']);
    const readDone = await harness.call('resources/read', {
      uri: 'people://1',
      inputResponses: { reader: accept({ name: 'Eve' }) },
      requestState: read.requestState,
    });
    expect(readDone.contents).toEqual([{ uri: 'people://1', text: 'read by Eve' }]);
  });

  test('methods that may not ask never answer input_required', async () => {
    const tools = await harness.call('tools/list', {});
    expect(tools.resultType).toBe('complete');
    expect(Array.isArray(tools.tools)).toBe(true);
    // resources/list's callback asks the client: refused at once, the request fails.
    const error = await failure(harness.call('resources/list', {}));
    expect(error.code).toBe(-32603);
    expect(error.message).toMatch(/cannot be asked during resources\/list/);
  });

  test('a method the client cannot be asked is refused with -32601 to the handler', async () => {
    const result = await harness.call('tools/call', { name: 'ping_client', arguments: {} });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/Method not found: ping/);
  });

  describe('requestState', () => {
    async function issued(): Promise<string> {
      const first = await harness.call('tools/call', { name: 'greet', arguments: {} });
      return first.requestState as string;
    }
    const retry = (requestState: unknown, params: Result = {}, options?: Options) =>
      harness.call(
        'tools/call',
        {
          name: 'greet',
          arguments: {},
          inputResponses: { user_name: accept({ name: 'Mallory' }) },
          requestState,
          ...params,
        },
        options,
      );

    test.each([
      [
        'a changed payload',
        (s: string) => s.replace(/\.(.)/, (_, c: string) => `.${c === 'A' ? 'B' : 'A'}`),
      ],
      ['a changed mac', (s: string) => `${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`],
      ['a suffix', (s: string) => `${s}-TAMPERED`],
      ['garbage', () => 'not-a-state'],
      ['a number', () => 42],
    ])('%s is refused with -32602 and no handler runs', async (_name, tamper) => {
      const state = await issued();
      runs.delete('greet');
      const error = await failure(retry(tamper(state)));
      expect(error.code).toBe(-32602);
      expect(error.data).toEqual({ reason: 'invalid_request_state' });
      expect(runs.get('greet')).toBeUndefined();
    });

    test('another secret does not verify', async () => {
      const error = await failure(retry(await issued(), {}, { secret: 'another-secret' }));
      expect(error.message).toMatch(/integrity/);
    });

    test('an expired state is refused', async () => {
      const issuedAt = Date.now();
      const first = await harness.call(
        'tools/call',
        { name: 'greet', arguments: {} },
        { now: () => issuedAt },
      );
      const late = () => issuedAt + REQUEST_STATE_TTL_MS + 1;
      const error = await failure(retry(first.requestState, {}, { now: late }));
      expect(error.code).toBe(-32602);
      expect(error.message).toMatch(/expired/);
      const inTime = await retry(first.requestState, {}, { now: () => issuedAt + 1000 });
      expect(textOf(inTime)).toBe('Hello, Mallory!');
    });

    test('a state is bound to its request: method, name, arguments and principal', async () => {
      const first = await harness.call(
        'tools/call',
        { name: 'greet', arguments: {} },
        { principal: 'alice' },
      );
      const state = first.requestState as string;
      const elsewhere = [
        retry(state, { name: 'two_steps' }, { principal: 'alice' }),
        retry(state, { arguments: { greeting: 'Yo' } }, { principal: 'alice' }),
        retry(state, {}, { principal: 'bob' }),
        retry(state),
        harness.call('prompts/get', { name: 'greet', requestState: state }, { principal: 'alice' }),
      ];
      for (const attempt of elsewhere) {
        const error = await failure(attempt);
        expect(error.code).toBe(-32602);
        expect(error.message).toMatch(/another (request|principal)/);
      }
      // Its own retry, with another _meta (progress token), still goes.
      const own = await retry(state, { _meta: { progressToken: 'p1' } }, { principal: 'alice' });
      expect(textOf(own)).toBe('Hello, Mallory!');
    });
  });

  describe('inputResponses', () => {
    test.each([
      ['null', null],
      ['an array', [accept({ name: 'x' })]],
      ['a number entry', { user_name: 12345 }],
      ['an entry of no result kind', { user_name: { hello: 'world' } }],
      ['a wrapped entry', { user_name: { method: 'elicitation/create', result: accept({}) } }],
    ])('%s is refused with -32602 before any handler runs', async (_name, inputResponses) => {
      runs.delete('greet');
      const error = await failure(
        harness.call('tools/call', { name: 'greet', arguments: {}, inputResponses }),
      );
      expect(error.code).toBe(-32602);
      expect(runs.get('greet')).toBeUndefined();
    });

    test('an answer of another method than its key asked is refused with -32602', async () => {
      const error = await failure(
        harness.call('tools/call', {
          name: 'greet',
          arguments: {},
          inputResponses: { user_name: rootsResult },
        }),
      );
      expect(error.code).toBe(-32602);
      expect(error.message).toMatch(
        /inputResponses\.user_name is not a elicitation\/create result/,
      );
    });
  });

  describe('client capabilities', () => {
    test('a request the client lacks the capability for fails the call with -32021', async () => {
      const error = await failure(
        harness.call(
          'tools/call',
          { name: 'ask_all', arguments: {} },
          {
            clientCapabilities: { elicitation: {}, roots: {} },
          },
        ),
      );
      expect(error.code).toBe(-32021);
      expect(error.data).toEqual({ requiredCapabilities: { sampling: {} } });
    });

    test('-32021 names every capability the requests sent together lacked', async () => {
      const error = await failure(
        harness.call(
          'tools/call',
          { name: 'ask_all', arguments: {} },
          { clientCapabilities: { roots: {} } },
        ),
      );
      expect(error.code).toBe(-32021);
      expect(error.data).toEqual({
        requiredCapabilities: { elicitation: { form: {} }, sampling: {} },
      });
      expect(error.message).toMatch(/tools\/call: elicitation\.form, sampling/);
    });

    test('form elicitation needs elicitation (bare) or elicitation.form', async () => {
      const urlOnly = await failure(
        harness.call(
          'tools/call',
          { name: 'greet', arguments: {} },
          {
            clientCapabilities: { elicitation: { url: {} } },
          },
        ),
      );
      expect(urlOnly.data).toEqual({ requiredCapabilities: { elicitation: { form: {} } } });
      const form = await harness.call(
        'tools/call',
        { name: 'greet', arguments: {} },
        {
          clientCapabilities: { elicitation: { form: {} } },
        },
      );
      expect(form.resultType).toBe('input_required');
    });

    test('a handler that carries on without it asks only what the client supports', async () => {
      const clientCapabilities = { sampling: {} };
      const first = await harness.call(
        'tools/call',
        { name: 'ask_what_you_can', arguments: {} },
        { clientCapabilities },
      );
      expect(Object.keys(inputRequests(first))).toEqual(['weather']);
      const done = await harness.call(
        'tools/call',
        {
          name: 'ask_what_you_can',
          arguments: {},
          inputResponses: { weather: sampled('Sunny') },
          requestState: first.requestState,
        },
        { clientCapabilities },
      );
      expect(textOf(done)).toMatch(/^refused -32021 \| .*Sunny/);
    });
  });
});

describe('the conformance fixtures (registerInputRequiredFixtures), as the scenarios call them', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await serve(registerInputRequiredFixtures);
  });
  afterAll(() => harness.close());

  const tool = (name: string, more: Result = {}, options?: Options) =>
    harness.call('tools/call', { name, arguments: {}, ...more }, options);

  test.each([
    [
      'test_input_required_result_elicitation',
      'user_name',
      accept({ name: 'Alice' }),
      'Hello, Alice!',
    ],
    [
      'test_input_required_result_sampling',
      'capital_question',
      sampled('The capital of France is Paris.'),
      'LLM response: The capital of France is Paris.',
    ],
    [
      'test_input_required_result_list_roots',
      'client_roots',
      { roots: [{ uri: 'file:///test/root', name: 'Test Root' }] },
      'Client roots: file:///test/root',
    ],
    ['test_input_required_result_request_state', 'confirm', accept({ ok: true }), 'state-ok'],
    [
      'test_input_required_result_tampered_state',
      'confirm',
      accept({ ok: true }),
      'Confirmed: true',
    ],
  ])('%s asks %s, then completes', async (name, key, response, expected) => {
    const first = await tool(name);
    expect(first.resultType).toBe('input_required');
    expect(Object.keys(inputRequests(first))).toEqual([key]);
    expect(typeof first.requestState).toBe('string');
    const done = await tool(name, {
      inputResponses: { [key]: response },
      requestState: first.requestState,
    });
    expect(textOf(done)).toContain(expected);
    const tampered = await failure(
      tool(name, {
        inputResponses: { [key]: response },
        requestState: `${String(first.requestState)}-TAMPERED`,
      }),
    );
    expect(tampered.code).toBe(-32602);
  });

  test('multiple inputs: elicitation, sampling and roots in one round', async () => {
    const first = await tool('test_input_required_result_multiple_inputs');
    const asked = inputRequests(first);
    expect(Object.fromEntries(Object.entries(asked).map(([k, v]) => [k, v.method]))).toEqual({
      user_name: 'elicitation/create',
      greeting: 'sampling/createMessage',
      client_roots: 'roots/list',
    });
    const done = await tool('test_input_required_result_multiple_inputs', {
      inputResponses: {
        user_name: accept({ name: 'Alice' }),
        greeting: sampled('Hello there!'),
        client_roots: rootsResult,
      },
      requestState: first.requestState,
    });
    expect(textOf(done)).toBe('Hello there! Alice (1 root(s))');
  });

  test('multi round: step1, step2, then the result', async () => {
    const r1 = await tool('test_input_required_result_multi_round');
    expect(Object.keys(inputRequests(r1))).toEqual(['step1']);
    const r2 = await tool('test_input_required_result_multi_round', {
      inputResponses: { step1: accept({ name: 'Alice' }) },
      requestState: r1.requestState,
    });
    expect(Object.keys(inputRequests(r2))).toEqual(['step2']);
    expect(r2.requestState).not.toBe(r1.requestState);
    const r3 = await tool('test_input_required_result_multi_round', {
      inputResponses: { step2: accept({ color: 'blue' }) },
      requestState: r2.requestState,
    });
    expect(textOf(r3)).toBe('Alice likes blue');
  });

  test('capability check: sampling only, no elicitation asked', async () => {
    const first = await tool(
      'test_input_required_result_capabilities',
      {},
      {
        clientCapabilities: { sampling: {} },
      },
    );
    expect(Object.values(inputRequests(first)).map((r) => r.method)).toEqual([
      'sampling/createMessage',
    ]);
  });

  test('missing capability: -32021 naming sampling', async () => {
    const error = await failure(tool('test_missing_capability', {}, { clientCapabilities: {} }));
    expect(error.code).toBe(-32021);
    expect(error.data).toEqual({ requiredCapabilities: { sampling: {} } });
  });

  test('the prompt asks user_context, then gives its messages', async () => {
    const first = await harness.call('prompts/get', { name: 'test_input_required_result_prompt' });
    expect(Object.keys(inputRequests(first))).toEqual(['user_context']);
    const done = await harness.call('prompts/get', {
      name: 'test_input_required_result_prompt',
      inputResponses: { user_context: accept({ context: 'test context' }) },
      requestState: first.requestState,
    });
    expect(done.messages).toEqual([
      { role: 'user', content: { type: 'text', text: 'Context: test context' } },
    ]);
  });

  test('validate input: a number or null for inputResponses is a -32602 error', async () => {
    for (const inputResponses of [{ user_name: 12345 }, null]) {
      const error = await failure(
        tool('test_input_required_result_elicitation', { inputResponses }),
      );
      expect(error.code).toBe(-32602);
    }
  });
});
