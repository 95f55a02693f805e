import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { ElicitRequestFormParams } from '@modelcontextprotocol/sdk/types.js';
import { INPUT_KEY_META } from '../../worker/server/inputRequired';

/**
 * Test-only: the tools and the prompt the conformance suite's `input-required-result-*`
 * scenarios (SEP-2322, multi round-trip requests) and server-stateless's
 * `test_missing_capability` call, written as ordinary SDK 1.x handlers: they ask the client with
 * elicitInput / createMessage / listRoots, as they would on a 2025-11-25 session. In the
 * 2026-07-28 era the worker runs them through worker/server/inputRequired.ts, which turns those
 * requests into InputRequiredResults; the keys the scenarios expect (user_name,
 * capital_question, ...) are named with `_meta[INPUT_KEY_META]`.
 */
export function registerInputRequiredFixtures(server: McpServer): void {
  const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
  // The request a handler serves: the SDK sends its own requests in relation to it.
  const related = (extra: { requestId: string | number }) => ({
    relatedRequestId: extra.requestId,
  });
  const elicit = (
    key: string,
    message: string,
    properties: ElicitRequestFormParams['requestedSchema']['properties'],
    extra: { requestId: string | number },
  ) =>
    server.server.elicitInput(
      {
        message,
        requestedSchema: { type: 'object', properties, required: Object.keys(properties) },
        _meta: { [INPUT_KEY_META]: key },
      },
      related(extra),
    );
  const sample = (
    key: string,
    prompt: string,
    maxTokens: number,
    extra: { requestId: string | number },
  ) =>
    server.server.createMessage(
      {
        messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
        maxTokens,
        _meta: { [INPUT_KEY_META]: key },
      },
      related(extra),
    );
  const roots = (key: string, extra: { requestId: string | number }) =>
    server.server.listRoots({ _meta: { [INPUT_KEY_META]: key } }, related(extra));
  const sampledText = (result: { content: unknown }) => {
    const content = (Array.isArray(result.content) ? result.content[0] : result.content) as {
      type?: string;
      text?: string;
    };
    return content?.type === 'text' ? String(content.text) : `(${String(content?.type)})`;
  };
  const field = (result: { action: string; content?: Record<string, unknown> }, name: string) =>
    result.action === 'accept' ? String(result.content?.[name]) : `(${result.action})`;

  // input-required-result-basic-elicitation, -missing-input-response, -result-type,
  // -ignore-extra-params, -validate-input.
  server.registerTool(
    'test_input_required_result_elicitation',
    { description: 'Fixture: asks the user their name (SEP-2322)' },
    async (extra) => {
      const answer = await elicit(
        'user_name',
        'What is your name?',
        { name: { type: 'string' } },
        extra,
      );
      return text(`Hello, ${field(answer, 'name')}!`);
    },
  );

  // input-required-result-basic-sampling.
  server.registerTool(
    'test_input_required_result_sampling',
    { description: 'Fixture: asks the client LLM a question (SEP-2322)' },
    async (extra) => {
      const answer = await sample('capital_question', 'What is the capital of France?', 100, extra);
      return text(`LLM response: ${sampledText(answer)}`);
    },
  );

  // input-required-result-basic-list-roots.
  server.registerTool(
    'test_input_required_result_list_roots',
    { description: "Fixture: lists the client's roots (SEP-2322)" },
    async (extra) => {
      const answer = await roots('client_roots', extra);
      return text(`Client roots: ${answer.roots.map((root) => root.uri).join(', ') || '(none)'}`);
    },
  );

  // input-required-result-request-state. The round verified the echoed requestState before this
  // handler ran (a tampered, expired or foreign one is refused with -32602): an answer that
  // reached it went with a valid state.
  server.registerTool(
    'test_input_required_result_request_state',
    { description: 'Fixture: asks for a confirmation, state round-tripped (SEP-2322)' },
    async (extra) => {
      const answer = await elicit('confirm', 'Please confirm', { ok: { type: 'boolean' } }, extra);
      return text(`state-ok: confirmed=${field(answer, 'ok')}`);
    },
  );

  // input-required-result-multiple-input-requests: three requests sent together, asked in one
  // round.
  server.registerTool(
    'test_input_required_result_multiple_inputs',
    { description: 'Fixture: asks for a name, a greeting and the roots at once (SEP-2322)' },
    async (extra) => {
      const [name, greeting, listed] = await Promise.all([
        elicit('user_name', 'What is your name?', { name: { type: 'string' } }, extra),
        sample('greeting', 'Generate a greeting', 50, extra),
        roots('client_roots', extra),
      ]);
      return text(
        `${sampledText(greeting)} ${field(name, 'name')} (${listed.roots.length} root(s))`,
      );
    },
  );

  // input-required-result-multi-round: the second question comes once the first is answered.
  server.registerTool(
    'test_input_required_result_multi_round',
    { description: 'Fixture: asks two questions one after the other (SEP-2322)' },
    async (extra) => {
      const name = await elicit(
        'step1',
        'Step 1: What is your name?',
        { name: { type: 'string' } },
        extra,
      );
      const color = await elicit(
        'step2',
        'Step 2: What is your favorite color?',
        { color: { type: 'string' } },
        extra,
      );
      return text(`${field(name, 'name')} likes ${field(color, 'color')}`);
    },
  );

  // input-required-result-tampered-state: a modified requestState is refused before this runs.
  server.registerTool(
    'test_input_required_result_tampered_state',
    { description: 'Fixture: asks for a confirmation; its requestState is signed (SEP-2322)' },
    async (extra) => {
      const answer = await elicit('confirm', 'Please confirm', { ok: { type: 'boolean' } }, extra);
      return text(`Confirmed: ${field(answer, 'ok')}`);
    },
  );

  // input-required-result-capability-check: asks what the client supports. A request the
  // client has no capability for is refused at once (-32021) and never listed; the handler
  // carries on without it.
  server.registerTool(
    'test_input_required_result_capabilities',
    { description: 'Fixture: asks by elicitation and sampling, each if supported (SEP-2322)' },
    async (extra) => {
      const [name, summary] = await Promise.allSettled([
        elicit('user_name', 'What is your name?', { name: { type: 'string' } }, extra),
        sample('summary', 'Summarize the weather in one sentence.', 50, extra),
      ]);
      const nameText = name.status === 'fulfilled' ? field(name.value, 'name') : 'not asked';
      const summaryText = summary.status === 'fulfilled' ? sampledText(summary.value) : 'not asked';
      return text(`Name: ${nameText}; summary: ${summaryText}`);
    },
  );

  // server-stateless test_missing_capability: needs sampling, which the scenario's client does
  // not declare: the call fails with MissingRequiredClientCapability (-32021).
  server.registerTool(
    'test_missing_capability',
    { description: 'Fixture: needs the sampling capability' },
    async (extra) => {
      const answer = await sample('completion', 'Say hello.', 20, extra);
      return text(`LLM response: ${sampledText(answer)}`);
    },
  );

  // input-required-result-non-tool-request: prompts/get asks too.
  server.registerPrompt(
    'test_input_required_result_prompt',
    // An empty argsSchema: the SDK's typings then pass the request's extra as the 2nd argument.
    {
      description: 'Fixture: a prompt that asks the user for its context (SEP-2322)',
      argsSchema: {},
    },
    async (_args, extra) => {
      const answer = await elicit(
        'user_context',
        'What context should the prompt use?',
        { context: { type: 'string' } },
        extra,
      );
      return {
        messages: [
          {
            role: 'user' as const,
            content: { type: 'text' as const, text: `Context: ${field(answer, 'context')}` },
          },
        ],
      };
    },
  );
}
