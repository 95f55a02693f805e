/**
 * The benchmark's MCP clients, one per closed-loop lane, on raw `http` with a keep-alive agent
 * (cheap: the client shares the cores with the servers it measures). The same code drives the
 * SDK's reference server and the project.
 *
 * - McpHttpSession: Streamable HTTP. initialize, notifications/initialized, then requests; a
 *   reply is read from a JSON body or from the SSE stream the POST answers with.
 * - SeedSession: the project's seed API. One `GET /mcp/sse` stream; `POST /mcp/sse/send` is
 *   answered 202 with a requestId, the result arrives on the stream as `tool-result`.
 */
import type http from 'node:http';
import { httpRequest, openSseStream, postJson, sseParser, type SseStream } from './sseStream';

export const MCP_PROTOCOL_VERSION = '2025-11-25';

/** A tool call that ended in anything but a result without isError. */
export class CallFailed extends Error {}

export interface ToolCaller {
  callTool(name: string, args: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

interface JsonRpcReply {
  id?: unknown;
  result?: { isError?: boolean } & Record<string, unknown>;
  error?: { code: number; message: string };
}

/** The JSON-RPC reply with `id` in a POST's answer (a JSON body or an SSE stream). */
export function replyOf(
  res: { headers: http.IncomingHttpHeaders; body: string },
  id: number,
): JsonRpcReply {
  const type = res.headers['content-type'] ?? '';
  let found: JsonRpcReply | undefined;
  const consider = (text: string) => {
    if (text === '') return; // a priming event: an id to resume from, no message
    const parsed = JSON.parse(text) as JsonRpcReply | JsonRpcReply[];
    for (const m of Array.isArray(parsed) ? parsed : [parsed]) if (m.id === id) found = m;
  };
  if (type.startsWith('text/event-stream')) {
    const parse = sseParser((event, data) => {
      if (event === 'message') consider(data);
    });
    parse(res.body.endsWith('\n\n') ? res.body : `${res.body}\n\n`);
  } else if (type.startsWith('application/json')) consider(res.body);
  if (!found)
    throw new CallFailed(`no reply to request ${id} in ${type}: ${res.body.slice(0, 200)}`);
  return found;
}

export class McpHttpSession implements ToolCaller {
  private sessionId = '';
  private nextId = 1;
  private readonly endpoint: string;

  /** `token`: a bearer token, or undefined for a server without auth (the SDK's example). */
  constructor(
    private readonly agent: http.Agent,
    baseUrl: string,
    private readonly token: string | undefined,
  ) {
    this.endpoint = `${baseUrl}/mcp`;
  }

  private headers(): http.OutgoingHttpHeaders {
    return {
      ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      ...(this.sessionId
        ? { 'Mcp-Session-Id': this.sessionId, 'Mcp-Protocol-Version': MCP_PROTOCOL_VERSION }
        : {}),
    };
  }

  private async post(message: Record<string, unknown>) {
    return httpRequest(this.agent, this.endpoint, 'POST', this.headers(), JSON.stringify(message));
  }

  /** initialize, then notifications/initialized: the session is ready for calls. */
  async open(): Promise<this> {
    const id = this.nextId++;
    const res = await this.post({
      jsonrpc: '2.0',
      id,
      method: 'initialize',
      params: {
        protocolVersion: MCP_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'bench', version: '1' },
      },
    });
    const sessionId = res.headers['mcp-session-id'];
    if (res.status !== 200 || typeof sessionId !== 'string') {
      throw new CallFailed(`initialize: HTTP ${res.status} ${res.body.slice(0, 200)}`);
    }
    const reply = replyOf(res, id);
    if (!reply.result) throw new CallFailed(`initialize: ${JSON.stringify(reply.error)}`);
    this.sessionId = sessionId;
    const ack = await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    if (ack.status !== 202) {
      throw new CallFailed(
        `notifications/initialized: HTTP ${ack.status} ${ack.body.slice(0, 200)}`,
      );
    }
    return this;
  }

  async callTool(name: string, args: Record<string, unknown>): Promise<void> {
    const id = this.nextId++;
    const res = await this.post({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name, arguments: args },
    });
    if (res.status !== 200) throw new CallFailed(`HTTP ${res.status} ${res.body.slice(0, 200)}`);
    const reply = replyOf(res, id);
    if (!reply.result || reply.result.isError) {
      throw new CallFailed(`${name}: ${JSON.stringify(reply.error ?? reply.result).slice(0, 200)}`);
    }
  }

  /** Ends the session (DELETE), so the server lets go of it. */
  async close(): Promise<void> {
    if (!this.sessionId) return;
    await httpRequest(this.agent, this.endpoint, 'DELETE', this.headers());
    this.sessionId = '';
  }
}

interface SeedOutcome {
  ok: boolean;
  why?: string;
}

export class SeedSession implements ToolCaller {
  private stream?: SseStream;
  private readonly waiting = new Map<string, (o: SeedOutcome) => void>();
  /** Results that arrived before their POST's 202 was read. */
  private readonly early = new Map<string, SeedOutcome>();

  constructor(
    private readonly agent: http.Agent,
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async open(): Promise<this> {
    this.stream = await openSseStream(this.baseUrl, this.token, (event, data) => {
      if (event !== 'tool-result' && event !== 'mcp-error') return;
      const parsed = JSON.parse(data) as {
        requestId: string;
        metadata?: unknown;
        result?: { isError?: boolean };
      };
      if (event === 'tool-result' && parsed.metadata !== undefined) return; // progress
      const ok = event === 'tool-result' && !parsed.result?.isError;
      const outcome = { ok, why: ok ? undefined : `${event} ${data.slice(0, 200)}` };
      const wake = this.waiting.get(parsed.requestId);
      if (wake) {
        this.waiting.delete(parsed.requestId);
        wake(outcome);
      } else this.early.set(parsed.requestId, outcome);
    });
    return this;
  }

  async callTool(name: string, args: Record<string, unknown>): Promise<void> {
    const { status, body } = await postJson(
      this.agent,
      `${this.baseUrl}/mcp/sse/send`,
      this.token,
      {
        connectionId: this.stream!.connectionId,
        message: { method: 'tools/call', params: { name, arguments: args } },
      },
    );
    if (status !== 202 || typeof body.requestId !== 'string') {
      throw new CallFailed(`HTTP ${status} ${JSON.stringify(body).slice(0, 200)}`);
    }
    const requestId = body.requestId;
    let outcome = this.early.get(requestId);
    this.early.delete(requestId);
    outcome ??= await new Promise<SeedOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId);
        resolve({ ok: false, why: `no result for ${requestId} in 30 s` });
      }, 30_000);
      this.waiting.set(requestId, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
    });
    if (!outcome.ok) throw new CallFailed(outcome.why);
  }

  async close(): Promise<void> {
    this.stream?.close();
  }
}
