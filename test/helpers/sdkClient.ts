import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  LoggingMessageNotificationSchema,
  McpError,
  type CallToolResult,
  type LoggingMessageNotification,
} from '@modelcontextprotocol/sdk/types.js';

/** Helpers for tests driving the cluster with the SDK 1.x `Client`. */

/**
 * A Streamable HTTP transport to `${baseUrl}/mcp` with a Bearer token and no reconnection: a
 * retry timer left after close would outlive the test.
 */
export function streamableTransport(baseUrl: string, token: string): StreamableHTTPClientTransport {
  return new StreamableHTTPClientTransport(new URL(`${baseUrl}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    reconnectionOptions: {
      initialReconnectionDelay: 100,
      maxReconnectionDelay: 100,
      reconnectionDelayGrowFactor: 1,
      maxRetries: 0,
    },
  });
}

/** Calls a tool that must succeed; its structured content (the entity, with its id). */
export async function callOk(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<{ id: string }> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError).toBeFalsy();
  return result.structuredContent as { id: string };
}

/** The JSON-RPC error a request must fail with. */
export async function rpcError(promise: Promise<unknown>): Promise<McpError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(McpError);
  return err as McpError;
}

/**
 * Records what a client is shown during a tool call, in order: `log:<level>` for each log
 * message, `progress:<n>` for each progress notification, then `result`. `call` starts afresh
 * (both lists emptied) and returns the call's result.
 */
export function recordCallMessages(client: Client) {
  const seen: string[] = [];
  const logs: LoggingMessageNotification['params'][] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    seen.push(`log:${n.params.level}`);
    logs.push(n.params);
  });
  const call = async (name: string, args: Record<string, unknown>) => {
    seen.length = 0;
    logs.length = 0;
    const result = (await client.callTool({ name, arguments: args }, undefined, {
      onprogress: (p) => seen.push(`progress:${p.progress}`),
    })) as CallToolResult;
    seen.push('result');
    return result;
  };
  return { seen, logs, call };
}
