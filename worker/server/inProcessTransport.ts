import type {
  Transport,
  TransportSendOptions,
} from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  ErrorCode,
  type JSONRPCErrorResponse,
  type JSONRPCMessage,
  type JSONRPCNotification,
  type JSONRPCRequest,
  type JSONRPCResultResponse,
  type MessageExtraInfo,
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { RPC_ERRORS } from '../../shared/protocol';

export interface InProcessTransportOptions {
  /**
   * A request without a reply after this long is cancelled (the server's handler sees its
   * signal abort) and settled with a RPC_ERRORS.timedOut error naming the limit. Unset: none.
   */
  requestTimeoutMs?: number;
}

export type ServerReply = JSONRPCResultResponse | JSONRPCErrorResponse;

export interface InProcessRequestOptions {
  /** Per-message extra the server's handlers see (authInfo: who asks, and for which command). */
  extra?: MessageExtraInfo;
  /** Notifications the server sends about this request (progress), in the order sent. */
  onNotification?: (notification: JSONRPCNotification) => void;
}

export interface InProcessRequest {
  /** The JSON-RPC id this transport gave the request (for cancellation). */
  id: number;
  /** The server's reply. Rejects only when the transport closes first. */
  reply: Promise<ServerReply>;
}

interface Pending {
  resolve: (reply: ServerReply) => void;
  reject: (err: Error) => void;
  onNotification?: (notification: JSONRPCNotification) => void;
  timer?: NodeJS.Timeout;
}

/**
 * An MCP SDK Transport joining an in-process caller (the worker's dispatcher) to an McpServer,
 * with no serialization and no sockets: the server calls send() for what it emits, the caller
 * uses request()/notify()/cancel() for what goes in. Replies and request-related notifications
 * (progress) are routed back to the caller by JSON-RPC id.
 *
 * Usage: `await mcpServer.connect(transport)` (which calls start()), then request(...).
 */
export class InProcessTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void;

  /**
   * Server -> client requests (sampling, elicitation, roots), with the id of the request they
   * belong to: return true when taken care of (the reply comes back through receive()); when
   * unset or false, they are refused at once with "method not found".
   */
  onServerRequest?: (request: JSONRPCRequest, relatedRequestId?: RequestId) => boolean;

  /**
   * Notifications the server sends about no request (list changed, resource updated): dropped
   * when unset.
   */
  onServerNotification?: (notification: JSONRPCNotification) => void;

  private nextId = 1;
  private readonly pending = new Map<RequestId, Pending>();
  private started = false;
  private closed = false;

  constructor(private readonly options: InProcessTransportOptions = {}) {}

  async start(): Promise<void> {
    if (this.started) throw new Error('InProcessTransport already started');
    this.started = true;
  }

  /**
   * Server -> caller. The messages are the SDK's own, built to its types: told apart by their
   * members, not by the SDK's zod guards (a schema parse of every reply, results included).
   */
  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (this.closed) throw new Error('InProcessTransport is closed');
    if ('result' in message || 'error' in message) {
      if (message.id === undefined) return;
      const pending = this.pending.get(message.id);
      // No entry: a reply to a request already settled by cancel(); dropped.
      if (!pending) return;
      this.pending.delete(message.id);
      clearTimeout(pending.timer);
      pending.resolve(message);
      return;
    }
    if ('id' in message) {
      if (this.onServerRequest?.(message, options?.relatedRequestId)) return;
      // Server -> client requests (sampling, elicitation, roots): the dispatcher has no client
      // features to offer, so answer at once rather than leave the server waiting.
      const refusal: JSONRPCErrorResponse = {
        jsonrpc: '2.0',
        id: message.id,
        error: {
          code: ErrorCode.MethodNotFound,
          message: `Not supported by the in-process client: ${message.method}`,
        },
      };
      queueMicrotask(() => this.onmessage?.(refusal));
      return;
    }
    // A notification. Handlers' extra.sendNotification names the request it belongs to; others
    // go to onServerNotification.
    const related = options?.relatedRequestId;
    if (related !== undefined) this.pending.get(related)?.onNotification?.(message);
    else this.onServerNotification?.(message);
  }

  /** Caller -> server: a request; its reply comes back through `reply`. */
  request(
    method: string,
    params?: Record<string, unknown>,
    options: InProcessRequestOptions = {},
  ): InProcessRequest {
    this.assertOpen();
    const id = this.nextId++;
    const reply = new Promise<ServerReply>((resolve, reject) => {
      const pending: Pending = { resolve, reject, onNotification: options.onNotification };
      const timeoutMs = this.options.requestTimeoutMs;
      if (timeoutMs !== undefined) {
        pending.timer = setTimeout(() => this.timeOut(id, timeoutMs), timeoutMs);
        pending.timer.unref();
      }
      this.pending.set(id, pending);
    });
    this.deliver({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) }, options.extra);
    return { id, reply };
  }

  /** Caller -> server: the client's reply to a request the server sent (see onServerRequest). */
  receive(reply: ServerReply): void {
    this.assertOpen();
    this.deliver(reply);
  }

  /** Caller -> server: a notification (no reply). */
  notify(method: string, params?: Record<string, unknown>, extra?: MessageExtraInfo): void {
    this.assertOpen();
    this.deliver({ jsonrpc: '2.0', method, ...(params ? { params } : {}) }, extra);
  }

  /**
   * Cancels a request still waiting for its reply: tells the server (which aborts the handler's
   * signal and, per MCP, sends no reply) and settles `reply` with a RPC_ERRORS.requestCancelled error.
   * Returns false when the request is no longer pending.
   */
  cancel(id: number, reason?: string): boolean {
    return this.abandon(id, reason, {
      code: RPC_ERRORS.requestCancelled,
      message: reason ? `Request cancelled: ${reason}` : 'Request cancelled',
    });
  }

  /** The request ran past requestTimeoutMs: cancelled like cancel(), with its own error. */
  private timeOut(id: number, timeoutMs: number): void {
    this.abandon(id, `timed out after ${timeoutMs} ms`, {
      code: RPC_ERRORS.timedOut,
      message: `Request timed out after ${timeoutMs} ms (TOOL_TIMEOUT_MS) and was cancelled`,
    });
  }

  private abandon(
    id: number,
    reason: string | undefined,
    error: { code: number; message: string },
  ): boolean {
    const pending = this.pending.get(id);
    if (!pending || this.closed) return false;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    this.notify('notifications/cancelled', { requestId: id, ...(reason ? { reason } : {}) });
    pending.resolve({ jsonrpc: '2.0', id, error });
    return true;
  }

  /** Requests sent and not yet replied to. */
  get pendingCount(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new Error('InProcessTransport closed');
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.pending.clear();
    this.onclose?.();
  }

  private deliver(message: JSONRPCMessage, extra?: MessageExtraInfo): void {
    if (!this.onmessage) throw new Error('InProcessTransport has no server connected');
    this.onmessage(message, extra);
  }

  private assertOpen(): void {
    if (!this.started) throw new Error('InProcessTransport not started (connect a server first)');
    if (this.closed) throw new Error('InProcessTransport is closed');
  }
}
