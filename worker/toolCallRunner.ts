import type { CallToolResult, JSONRPCNotification } from '@modelcontextprotocol/sdk/types.js';
import type { CommandEnvelope } from '../shared/types';
import { INFRASTRUCTURE_FAILURE_META } from './server/backlogServer';
import type { InProcessTransport, ServerReply } from './server/inProcessTransport';
import { authInfoForCommand } from './server/requestContext';
import { errorOutcome, type DispatchOutcome } from './outcomes';

/**
 * What a call sends its client before the reply (progress, log messages, server requests),
 * published one after the other in the order queued. The first failure is kept and rethrown by
 * settle(): a lost progress event fails the command, which is then delivered again.
 */
export class Outbox {
  private chain: Promise<unknown> = Promise.resolve();
  private error: unknown;

  push(step: () => Promise<unknown>): void {
    this.chain = this.chain.then(step).catch((err: unknown) => {
      this.error ??= err;
    });
  }

  async settle(): Promise<void> {
    await this.chain;
    if (this.error !== undefined) throw this.error;
  }
}

export interface ToolCallHooks {
  /** Each notification the server sends about the call, with the outbox to publish it in. */
  onNotification(notification: JSONRPCNotification, outbox: Outbox): void;
  /** The call is running under this transport id (for cancels and server requests). */
  onStart?(jsonRpcId: number, outbox: Outbox): void;
  /** The call has its reply (or failed): undo what onStart recorded. */
  onEnd?(): void;
}

/**
 * Runs one tools/call, for the seed API and MCP sessions alike: the command's identity goes to
 * the handlers, what the call sends before its reply is published in order, and the reply is
 * returned only after all of that is published. Rejects (the command is delivered again) when
 * publishing fails or the tool reports an infrastructure failure, which is not its answer.
 */
export async function runToolCall(
  transport: InProcessTransport,
  command: CommandEnvelope,
  params: Record<string, unknown>,
  hooks: ToolCallHooks,
): Promise<ServerReply> {
  const outbox = new Outbox();
  const call = transport.request('tools/call', params, {
    extra: { authInfo: authInfoForCommand(command) },
    onNotification: (notification) => hooks.onNotification(notification, outbox),
  });
  hooks.onStart?.(call.id, outbox);
  let reply: ServerReply;
  try {
    reply = await call.reply;
  } finally {
    hooks.onEnd?.();
  }
  await outbox.settle();
  const result = toolResultOf(reply);
  if (result?.isError && result._meta?.[INFRASTRUCTURE_FAILURE_META] === true) {
    throw new Error(`Tool ${String(params.name)} failed: ${toolErrorText(result)}`);
  }
  return reply;
}

/** The outcome of a tools/call with this reply. */
export function toolCallOutcome(reply: ServerReply): DispatchOutcome {
  if ('error' in reply) return errorOutcome(reply.error.code);
  return toolResultOf(reply)?.isError ? 'error' : 'ok';
}

export function toolResultOf(reply: ServerReply): CallToolResult | undefined {
  return 'result' in reply ? (reply.result as CallToolResult) : undefined;
}

/** The text content of an isError result. */
export function toolErrorText(result: CallToolResult): string {
  return result.content
    .filter((c): c is { type: 'text'; text: string } => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}
