import { completable } from '@modelcontextprotocol/sdk/server/completable.js';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  CreateMessageResultSchema,
  ElicitResultSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { registerInputRequiredFixtures } from './inputRequiredFixtures';
import { registerTaskFixtures } from './taskFixtures';

/**
 * Test-only MCP_SERVER_MODULE: the tools, resources and prompts the conformance suite's
 * scenarios call by name (test_simple_text, test://static-text, ...), for both requirement sets
 * (2025-11-25 and 2026-07-28). The conformance test compiles it (test/conformance/tsconfig.json)
 * and its `npm run worker` processes load dist/test/conformance/fixtureServer.js. What the
 * worker's 2026-07-28 layer gives every module's server (caching hints, `resultType`, the URI
 * of a resource not found, log filtering by the request's level) is left to it, not added here.
 */
export function createMcpServer(): McpServer {
  const server = new McpServer({ name: 'conformance-fixture', version: '1.0.0' });
  server.server.registerCapabilities({ logging: {}, resources: { subscribe: true } });
  server.server.setRequestHandler(SetLevelRequestSchema, () => ({}));
  server.server.setRequestHandler(SubscribeRequestSchema, () => ({}));
  server.server.setRequestHandler(UnsubscribeRequestSchema, () => ({}));

  const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
  const image = { type: 'image' as const, data: RED_PIXEL_PNG, mimeType: 'image/png' };

  server.registerTool('test_simple_text', { description: 'Fixture: text' }, () =>
    text('This is a simple text response for testing.'),
  );
  server.registerTool('test_image_content', { description: 'Fixture: image' }, () => ({
    content: [image],
  }));
  server.registerTool('test_audio_content', { description: 'Fixture: audio' }, () => ({
    content: [{ type: 'audio' as const, data: silentWav(), mimeType: 'audio/wav' }],
  }));
  server.registerTool('test_embedded_resource', { description: 'Fixture: resource' }, () => ({
    content: [
      {
        type: 'resource' as const,
        resource: {
          uri: 'test://embedded-resource',
          mimeType: 'text/plain',
          text: 'This is an embedded resource content.',
        },
      },
    ],
  }));
  server.registerTool('test_multiple_content_types', { description: 'Fixture: mixed' }, () => ({
    content: [
      { type: 'text' as const, text: 'Multiple content types test:' },
      image,
      {
        type: 'resource' as const,
        resource: {
          uri: 'test://mixed-content-resource',
          mimeType: 'application/json',
          text: JSON.stringify({ test: 'data', value: 123 }),
        },
      },
    ],
  }));
  server.registerTool('test_tool_with_logging', { description: 'Fixture: logs' }, async (extra) => {
    for (const [i, data] of [
      'Tool execution started',
      'Tool processing data',
      'Tool execution completed',
    ].entries()) {
      if (i > 0) await sleep(50);
      await extra.sendNotification({
        method: 'notifications/message',
        params: { level: 'info', data },
      });
    }
    return text('Logging tool finished');
  });
  server.registerTool(
    'test_tool_with_progress',
    { description: 'Fixture: progress' },
    async (extra) => {
      const progressToken = extra._meta?.progressToken;
      for (const [i, progress] of [0, 50, 100].entries()) {
        if (i > 0) await sleep(50);
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress, total: 100 },
          });
        }
      }
      return text('Progress tool finished');
    },
  );
  server.registerTool('test_error_handling', { description: 'Fixture: error' }, () => ({
    ...text('This tool intentionally returns an error for testing'),
    isError: true,
  }));

  server.registerTool(
    'test_sampling',
    { description: 'Fixture: sampling', inputSchema: { prompt: z.string() } },
    async ({ prompt }, extra) => {
      const result = await extra.sendRequest(
        {
          method: 'sampling/createMessage',
          params: {
            messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
            maxTokens: 100,
          },
        },
        CreateMessageResultSchema,
      );
      const content = result.content as { type: string; text?: string };
      return text(`LLM response: ${content.type === 'text' ? String(content.text) : content.type}`);
    },
  );
  server.registerTool(
    'test_elicitation',
    { description: 'Fixture: elicitation', inputSchema: { message: z.string() } },
    async ({ message }, extra) => {
      const result = await extra.sendRequest(
        {
          method: 'elicitation/create',
          params: {
            message,
            requestedSchema: {
              type: 'object',
              properties: {
                username: { type: 'string', description: "User's response" },
                email: { type: 'string', description: "User's email address" },
              },
              required: ['username', 'email'],
            },
          },
        },
        ElicitResultSchema,
      );
      return text(
        `User response: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`,
      );
    },
  );
  const elicitWith = (name: string, properties: Record<string, unknown>) =>
    server.registerTool(name, { description: `Fixture: ${name}` }, async (extra) => {
      const result = await extra.sendRequest(
        {
          method: 'elicitation/create',
          params: {
            message: `Fixture ${name}`,
            // Raw JSON Schema, sent as is (the SDK's typed schema has no enumNames/anyOf form).
            requestedSchema: { type: 'object', properties } as never,
          },
        },
        ElicitResultSchema,
      );
      return text(
        `Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`,
      );
    });
  elicitWith('test_elicitation_sep1034_defaults', {
    name: { type: 'string', default: 'John Doe' },
    age: { type: 'integer', default: 30 },
    score: { type: 'number', default: 95.5 },
    status: { type: 'string', enum: ['active', 'inactive', 'pending'], default: 'active' },
    verified: { type: 'boolean', default: true },
  });
  elicitWith('test_elicitation_sep1330_enums', {
    untitledSingle: { type: 'string', enum: ['option1', 'option2', 'option3'] },
    titledSingle: {
      type: 'string',
      oneOf: [
        { const: 'value1', title: 'First Option' },
        { const: 'value2', title: 'Second Option' },
        { const: 'value3', title: 'Third Option' },
      ],
    },
    legacyEnum: {
      type: 'string',
      enum: ['opt1', 'opt2', 'opt3'],
      enumNames: ['Option One', 'Option Two', 'Option Three'],
    },
    untitledMulti: {
      type: 'array',
      items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
    },
    titledMulti: {
      type: 'array',
      items: {
        anyOf: [
          { const: 'value1', title: 'First Choice' },
          { const: 'value2', title: 'Second Choice' },
          { const: 'value3', title: 'Third Choice' },
        ],
      },
    },
  });

  // server-stateless (2026-07-28): a tool that logs (no log may reach a request without
  // _meta logLevel), one that asks the client mid-call (only an InputRequiredResult may come
  // back, never a request of its own on the stream), and hooks that change the lists.
  server.registerTool('test_logging_tool', { description: 'Fixture: logs' }, async (extra) => {
    await extra.sendNotification({
      method: 'notifications/message',
      params: { level: 'info', data: 'test_logging_tool ran' },
    });
    return text('Logged once');
  });
  server.registerTool(
    'test_streaming_elicitation',
    { description: 'Fixture: asks the user mid-call' },
    async (extra) => {
      const answer = await server.server.elicitInput(
        {
          message: 'Confirm?',
          requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } } },
        },
        { relatedRequestId: extra.requestId },
      );
      return text(`Elicitation completed: action=${answer.action}`);
    },
  );
  server.registerTool(
    'test_trigger_tool_change',
    { description: 'Fixture: announces a tools/list change' },
    () => {
      server.sendToolListChanged();
      return text('tools/list_changed sent');
    },
  );
  server.registerTool(
    'test_trigger_prompt_change',
    { description: 'Fixture: announces a prompts/list change' },
    () => {
      server.sendPromptListChanged();
      return text('prompts/list_changed sent');
    },
  );
  registerInputRequiredFixtures(server);
  registerTaskFixtures(server);

  server.registerResource(
    'static-text',
    'test://static-text',
    { description: 'Fixture: text resource', mimeType: 'text/plain' },
    (uri) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: 'text/plain',
          text: 'This is the content of the static text resource.',
        },
      ],
    }),
  );
  server.registerResource(
    'static-binary',
    'test://static-binary',
    { description: 'Fixture: binary resource', mimeType: 'image/png' },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: 'image/png', blob: RED_PIXEL_PNG }] }),
  );
  server.registerResource(
    'template',
    new ResourceTemplate('test://template/{id}/data', { list: undefined }),
    { description: 'Fixture: resource template', mimeType: 'application/json' },
    (uri, { id }) => ({
      contents: [
        {
          uri: uri.href,
          mimeType: 'application/json',
          text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${String(id)}` }),
        },
      ],
    }),
  );

  server.registerPrompt('test_simple_prompt', { description: 'Fixture: simple prompt' }, () => ({
    messages: [
      { role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } },
    ],
  }));
  server.registerPrompt(
    'test_prompt_with_arguments',
    {
      description: 'Fixture: prompt with arguments',
      argsSchema: {
        arg1: completable(z.string().describe('First test argument'), (value) =>
          ['paris', 'park', 'party'].filter((v) => v.startsWith(value)),
        ),
        arg2: z.string().describe('Second test argument'),
      },
    },
    ({ arg1, arg2 }) => ({
      messages: [
        {
          role: 'user',
          content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` },
        },
      ],
    }),
  );
  server.registerPrompt(
    'test_prompt_with_embedded_resource',
    {
      description: 'Fixture: prompt with a resource',
      argsSchema: { resourceUri: z.string().describe('URI of the resource to embed') },
    },
    ({ resourceUri }) => ({
      messages: [
        {
          role: 'user',
          content: {
            type: 'resource',
            resource: {
              uri: resourceUri,
              mimeType: 'text/plain',
              text: 'Embedded resource content for testing.',
            },
          },
        },
        {
          role: 'user',
          content: { type: 'text', text: 'Please process the embedded resource above.' },
        },
      ],
    }),
  );
  server.registerPrompt(
    'test_prompt_with_image',
    { description: 'Fixture: prompt with an image' },
    () => ({
      messages: [
        { role: 'user', content: image },
        { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
      ],
    }),
  );
  return server;
}

export default createMcpServer;

/** A 1x1 red PNG. */
const RED_PIXEL_PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';

/** 8 samples of silence as a 16-bit mono 8 kHz WAV, base64. */
function silentWav(): string {
  const samples = 8;
  const dataBytes = samples * 2;
  const wav = Buffer.alloc(44 + dataBytes);
  wav.write('RIFF', 0);
  wav.writeUInt32LE(36 + dataBytes, 4);
  wav.write('WAVE', 8);
  wav.write('fmt ', 12);
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(8000, 24);
  wav.writeUInt32LE(16000, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36);
  wav.writeUInt32LE(dataBytes, 40);
  return wav.toString('base64');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
