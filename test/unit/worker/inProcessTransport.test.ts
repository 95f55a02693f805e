import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  EmptyResultSchema,
  LATEST_PROTOCOL_VERSION,
  type JSONRPCNotification,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { RPC_ERRORS } from '../../../shared/protocol';
import { InProcessTransport } from '../../../worker/server/inProcessTransport';
import { waitFor } from '../../../devSupport/waitFor';

/** A small server exercising what the transport must carry. */
function testServer(seen: { aborted?: boolean; authClient?: string }) {
  const server = new McpServer({ name: 'transport-test', version: '1.0.0' });
  server.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }, extra) => {
    seen.authClient = extra.authInfo?.clientId;
    return { content: [{ type: 'text', text }] };
  });
  server.registerTool('count', { inputSchema: { to: z.number() } }, async ({ to }, extra) => {
    for (let i = 1; i <= to; i += 1) {
      await extra.sendNotification({
        method: 'notifications/progress',
        params: { progressToken: extra._meta?.progressToken ?? 'none', progress: i, total: to },
      });
    }
    return { content: [{ type: 'text', text: `counted to ${to}` }] };
  });
  server.registerTool('wait_for_abort', {}, async (extra) => {
    await new Promise<void>((resolve) => {
      if (extra.signal.aborted) resolve();
      extra.signal.addEventListener('abort', () => resolve());
    });
    seen.aborted = true;
    return { content: [{ type: 'text', text: 'aborted' }] };
  });
  server.registerTool('ping_client', {}, async (extra) => {
    try {
      await extra.sendRequest({ method: 'ping' }, EmptyResultSchema);
      return { content: [{ type: 'text', text: 'pong' }] };
    } catch (err) {
      return { content: [{ type: 'text', text: (err as Error).message }], isError: true };
    }
  });
  return server;
}

describe('InProcessTransport', () => {
  let transport: InProcessTransport;
  let server: McpServer;
  const seen: { aborted?: boolean; authClient?: string } = {};

  beforeEach(async () => {
    transport = new InProcessTransport();
    server = testServer(seen);
    await server.connect(transport);
  });

  afterEach(async () => {
    await server.close();
  });

  it('refuses requests before a server is connected', () => {
    expect(() => new InProcessTransport().request('ping')).toThrow(/not started/);
  });

  it('correlates replies by JSON-RPC id, concurrent requests included', async () => {
    const init = transport.request('initialize', {
      protocolVersion: LATEST_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'test', version: '1' },
    });
    const a = transport.request('tools/call', { name: 'echo', arguments: { text: 'a' } });
    const b = transport.request('tools/call', { name: 'echo', arguments: { text: 'b' } });
    expect(new Set([init.id, a.id, b.id]).size).toBe(3);
    const [initReply, aReply, bReply] = await Promise.all([init.reply, a.reply, b.reply]);
    expect(initReply).toMatchObject({
      id: init.id,
      result: { serverInfo: { name: 'transport-test' } },
    });
    expect(aReply).toMatchObject({ id: a.id, result: { content: [{ text: 'a' }] } });
    expect(bReply).toMatchObject({ id: b.id, result: { content: [{ text: 'b' }] } });
    expect(transport.pendingCount).toBe(0);
  });

  it('hands the per-message extra to handlers (authInfo)', async () => {
    await transport.request(
      'tools/call',
      { name: 'echo', arguments: { text: 'x' } },
      { extra: { authInfo: { token: '', clientId: 'alice', scopes: [] } } },
    ).reply;
    expect(seen.authClient).toBe('alice');
  });

  it("routes a request's notifications to it, in order, before its reply", async () => {
    const order: string[] = [];
    const call = transport.request(
      'tools/call',
      { name: 'count', arguments: { to: 3 }, _meta: { progressToken: 'p' } },
      {
        onNotification: (n: JSONRPCNotification) => order.push(`progress ${n.params?.progress}`),
      },
    );
    await call.reply.then(() => order.push('reply'));
    expect(order).toEqual(['progress 1', 'progress 2', 'progress 3', 'reply']);
  });

  it('returns JSON-RPC errors as replies (unknown method)', async () => {
    const reply = await transport.request('nope/nothing').reply;
    expect(reply).toMatchObject({ error: { code: -32601 } });
  });

  it('cancel() aborts the handler and settles the reply with requestCancelled', async () => {
    const call = transport.request('tools/call', { name: 'wait_for_abort', arguments: {} });
    expect(transport.cancel(call.id, 'enough')).toBe(true);
    const reply = await call.reply;
    expect(reply).toEqual({
      jsonrpc: '2.0',
      id: call.id,
      error: { code: RPC_ERRORS.requestCancelled, message: 'Request cancelled: enough' },
    });
    await waitFor(() => seen.aborted === true, 2000, 'handler aborted');
    expect(transport.cancel(call.id)).toBe(false);
  });

  it('with requestTimeoutMs, aborts a request running past it and settles timedOut', async () => {
    const timed = new InProcessTransport({ requestTimeoutMs: 100 });
    const timedSeen: { aborted?: boolean } = {};
    const timedServer = testServer(timedSeen);
    await timedServer.connect(timed);
    try {
      const fast = await timed.request('tools/call', { name: 'echo', arguments: { text: 'x' } })
        .reply;
      expect(fast).toMatchObject({ result: { content: [{ text: 'x' }] } });
      const call = timed.request('tools/call', { name: 'wait_for_abort', arguments: {} });
      expect(await call.reply).toEqual({
        jsonrpc: '2.0',
        id: call.id,
        error: {
          code: RPC_ERRORS.timedOut,
          message: 'Request timed out after 100 ms (TOOL_TIMEOUT_MS) and was cancelled',
        },
      });
      await waitFor(() => timedSeen.aborted === true, 2000, 'handler aborted');
      expect(timed.pendingCount).toBe(0);
    } finally {
      await timedServer.close();
    }
  });

  it('answers server-to-client requests with method-not-found', async () => {
    const reply = await transport.request('tools/call', { name: 'ping_client', arguments: {} })
      .reply;
    expect(reply).toMatchObject({ result: { isError: true } });
    expect(JSON.stringify(reply)).toMatch(/Not supported by the in-process client: ping/);
  });

  it('close() rejects pending requests, reports onclose, and refuses new ones', async () => {
    const call = transport.request('tools/call', { name: 'wait_for_abort', arguments: {} });
    await server.close();
    await expect(call.reply).rejects.toThrow(/closed/);
    expect(() => transport.request('ping')).toThrow(/closed/);
    await transport.close(); // idempotent
  });
});
