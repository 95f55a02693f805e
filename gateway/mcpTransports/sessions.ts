import type { Request } from 'express';
import type { Engine } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import {
  SPENT_STREAM_TTL_MS,
  STANDALONE_STREAM,
  isSessionId,
  mcpNames,
  newSessionId,
  type McpSessionRecord,
  type McpTransportKind,
} from '../../shared/mcpTransports';
import { MCP_EVENTS } from '../../shared/protocol';
import type { TokenClaims } from '../../shared/types';

export interface LoadedSession {
  sessionId: string;
  record: McpSessionRecord;
}

/**
 * MCP sessions in the engine's key/value store: created at initialize (Streamable HTTP) or
 * at GET /sse (legacy), their TTL slid by every request, bound to the creating token's subject.
 */
export class McpSessionStore {
  constructor(
    private readonly engine: Engine,
    private readonly ttlMs: number,
    private readonly streamTtlMs: number,
  ) {}

  async create(claims: TokenClaims, transport: McpTransportKind): Promise<string> {
    const record: McpSessionRecord = { sub: claims.sub, transport, createdAt: Date.now() };
    const json = JSON.stringify(record);
    for (;;) {
      const sessionId = newSessionId();
      const key = mcpNames.sessionKey(sessionId);
      if (await this.engine.kv.set(key, json, this.ttlMs, 'ifAbsent')) return sessionId;
    }
  }

  /**
   * The session named by `sessionId` for this token, its TTL slid (unless `slide` is false):
   * 404 when unknown, ended, of another transport or of another subject (which learns nothing
   * about it).
   */
  async load(
    sessionId: string,
    claims: TokenClaims,
    transport: McpTransportKind,
    slide = true,
  ): Promise<LoadedSession> {
    if (!isSessionId(sessionId)) throw errors.notFound('Session not found');
    const key = mcpNames.sessionKey(sessionId);
    const json = await this.engine.kv.get(key, slide ? this.ttlMs : undefined);
    if (json === undefined) throw errors.notFound('Session not found');
    const record = JSON.parse(json) as McpSessionRecord;
    if (record.sub !== claims.sub || record.transport !== transport) {
      throw errors.notFound('Session not found');
    }
    // Its resource subscriptions live as long as it does (not awaited: nothing waits on it).
    if (slide && record.subscribes) {
      this.engine.sets
        .touch(mcpNames.subscriptionsKey(sessionId), this.ttlMs)
        .catch(() => undefined);
    }
    return { sessionId, record };
  }

  /** The session of a Streamable HTTP request's Mcp-Session-Id header (400 when absent). */
  fromHeader(req: Request, claims: TokenClaims): Promise<LoadedSession> {
    const header = req.get('mcp-session-id');
    if (header === undefined || header === '') {
      throw errors.badRequest('Mcp-Session-Id header is required');
    }
    return this.load(header, claims, 'streamable-http');
  }

  /** Slides the session's TTL, and its resource subscriptions' with it. */
  async touch(sessionId: string): Promise<boolean> {
    const [touched] = await Promise.all([
      this.engine.kv.touch(mcpNames.sessionKey(sessionId), this.ttlMs),
      this.engine.sets.touch(mcpNames.subscriptionsKey(sessionId), this.ttlMs),
    ]);
    return touched;
  }

  /** Drops the session record only: for a session whose one stream is already gone. */
  async forget(sessionId: string): Promise<void> {
    await Promise.all([
      this.engine.kv.delete(mcpNames.sessionKey(sessionId)),
      this.engine.sets.delete(mcpNames.subscriptionsKey(sessionId)),
    ]);
  }

  /**
   * Ends the session everywhere: later requests get 404, its open streams close. Nothing can
   * resume the stream any more: its history goes soon (also what calls still running add).
   */
  async end(sessionId: string, openStream = STANDALONE_STREAM): Promise<void> {
    await Promise.all([
      this.engine.kv.delete(mcpNames.sessionKey(sessionId)),
      this.engine.sets.delete(mcpNames.subscriptionsKey(sessionId)),
    ]);
    const topic = mcpNames.streamTopic(sessionId, openStream);
    await this.engine.capHistoryTtl(topic, Math.min(this.streamTtlMs, SPENT_STREAM_TTL_MS));
    await this.engine.publish(topic, MCP_EVENTS.sessionEnded, '{}', {
      historyTtlMs: this.streamTtlMs,
    });
  }

  /** A request stream whose replies were all delivered: its history goes soon. */
  streamSpent(sessionId: string, streamId: string): void {
    this.engine
      .capHistoryTtl(
        mcpNames.streamTopic(sessionId, streamId),
        Math.min(this.streamTtlMs, SPENT_STREAM_TTL_MS),
      )
      .catch(() => undefined); // it expires with MCP_STREAM_TTL_S anyway
  }
}
