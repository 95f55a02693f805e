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
import { MemoryEngine } from '../../../shared/engine/memory';
import { silentLogger } from '../../../shared/logger';
import { createMetrics } from '../../../shared/metrics';
import { createWorker, type Worker } from '../../../worker/worker';
import { createMcpServer } from '../../conformance/fixtureServer';
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';

let engine: MemoryEngine;
let gateway: GatewayHarness;
let worker: Worker;

beforeAll(async () => {
  engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
  await engine.start();
  gateway = await startGateway({ engine });
  worker = createWorker({
    config: gateway.config,
    engine,
    logger: silentLogger(),
    metrics: createMetrics('worker'),
    createMcpServer: createMcpServer,
  });
  await worker.start();
});

afterAll(async () => {
  await gateway.close();
  await worker.stop();
  await engine.close();
});

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
