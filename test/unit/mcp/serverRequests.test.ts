/**
 * Server -> client requests (elicitation, sampling) over both MCP transports, memory engine:
 * the request rides the call's stream, the client's POSTed reply reaches the running call.
 * Uses the test-only conformance fixture server (test_elicitation, test_sampling).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import { createMcpServer } from '../../conformance/fixtureServer';
import {
  startGatewayWithWorker,
  type GatewayHarness,
  type GatewayWithWorker,
} from '../../helpers/gatewayHarness';

let gateway: GatewayHarness;
let stack: GatewayWithWorker;

beforeAll(async () => {
  stack = await startGatewayWithWorker({ createMcpServer });
  ({ gateway } = stack);
});

afterAll(() => stack.close());

const transports: Record<string, () => Transport> = {
  'Streamable HTTP': () =>
    new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${gateway.tokens.team}` } },
    }),
  'legacy SSE': () =>
    new SSEClientTransport(new URL(`${gateway.url}/sse`), {
      requestInit: { headers: { Authorization: `Bearer ${gateway.tokens.team}` } },
    }),
};

test.each(Object.keys(transports))(
  '%s: elicitation and sampling reach the client and back',
  async (name) => {
    const client = new Client(
      { name: 'server-requests', version: '1.0.0' },
      { capabilities: { elicitation: {}, sampling: {} } },
    );
    client.setRequestHandler(ElicitRequestSchema, () => ({
      action: 'accept',
      content: { username: 'ada', email: 'ada@example.com' },
    }));
    client.setRequestHandler(CreateMessageRequestSchema, (request) => ({
      role: 'assistant',
      model: 'test-model',
      content: { type: 'text', text: `echo ${JSON.stringify(request.params.messages[0].content)}` },
    }));
    await client.connect(transports[name]());
    try {
      const elicited = (await client.callTool({
        name: 'test_elicitation',
        arguments: { message: 'Who are you?' },
      })) as CallToolResult;
      expect(JSON.stringify(elicited.content)).toContain('ada@example.com');
      const sampled = (await client.callTool({
        name: 'test_sampling',
        arguments: { prompt: 'hello' },
      })) as CallToolResult;
      expect(JSON.stringify(sampled.content)).toContain('LLM response: echo');
    } finally {
      await client.close();
    }
  },
);
