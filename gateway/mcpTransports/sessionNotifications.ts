import type { MemberSets } from '../../shared/engine/engine';
import { mcpNames, type McpChange } from '../../shared/mcpTransports';

const RESOURCE_UPDATED = 'notifications/resources/updated';
/** Changes every session with a stream here gets (the server's capabilities announce them). */
const LIST_CHANGES: ReadonlySet<string> = new Set([
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/resources/list_changed',
]);

/** A 2025 session's stream for server-initiated messages, held by this process. */
interface SessionStream {
  sessionId: string;
  /** Writes a JSON-RPC notification (serialized) on the stream. */
  write(data: string): void;
  /** The URIs the session subscribed to, as last read from the engine. */
  uris: Set<string>;
  /** Reads of the subscription set run one after another; the last one read wins. */
  reading: Promise<void>;
  detached: boolean;
}

/**
 * Change notifications for the 2025 sessions (Streamable HTTP's GET stream, a legacy /sse
 * stream) whose stream this gateway process holds. The process hears every worker's changes on
 * one subscription (ListenHub); here each goes to its streams by lookup, never by a scan of
 * sessions: `notifications/resources/updated` by its URI (an index of the subscribed URIs of
 * the sessions held here), list changes to each held session.
 *
 * Subscriptions live in the engine (mcpNames.subscriptionsKey, written by the worker that
 * served resources/subscribe): a stream reads its session's set when it opens and again each
 * time a worker says the set changed, so the pod holding the stream, whichever it is, delivers
 * what the session subscribed to through any pod. A session with no stream open gets nothing
 * (the server MAY send on the GET stream; what no stream takes is dropped, as the SDK's own
 * server does).
 */
export class SessionStreams {
  private readonly bySession = new Map<string, SessionStream>();
  private readonly byUri = new Map<string, Set<SessionStream>>();

  constructor(private readonly sets: Pick<MemberSets, 'members'>) {}

  get size(): number {
    return this.bySession.size;
  }

  /**
   * Delivers the session's changes to `write` until the returned function is called. Call it
   * once the process hears the changes topic (ListenHub.ready), so no change of the set is
   * missed between its first read and the stream's registration.
   */
  async attach(sessionId: string, write: (data: string) => void): Promise<() => void> {
    const stream: SessionStream = {
      sessionId,
      write,
      uris: new Set(),
      reading: Promise.resolve(),
      detached: false,
    };
    // One stream per session (the GET lock): a stale one left behind is replaced.
    const previous = this.bySession.get(sessionId);
    if (previous) this.detach(previous);
    this.bySession.set(sessionId, stream);
    this.reload(stream);
    await stream.reading;
    return () => this.detach(stream);
  }

  /** A change any worker published. */
  change(change: McpChange): void {
    if (this.bySession.size === 0) return;
    if (change.method === RESOURCE_UPDATED) {
      const uri = change.params?.uri;
      const streams = typeof uri === 'string' ? this.byUri.get(uri) : undefined;
      if (!streams) return;
      const data = message(change);
      for (const stream of streams) stream.write(data);
    } else if (LIST_CHANGES.has(change.method)) {
      const data = message(change);
      for (const stream of this.bySession.values()) stream.write(data);
    }
  }

  /** A worker changed the session's subscriptions: read again, if its stream is held here. */
  subscriptionsChanged(sessionId: string): void {
    const stream = this.bySession.get(sessionId);
    if (stream) this.reload(stream);
  }

  private reload(stream: SessionStream): void {
    stream.reading = stream.reading
      .then(() => this.sets.members(mcpNames.subscriptionsKey(stream.sessionId)))
      .then(
        (uris) => {
          if (!stream.detached) this.index(stream, new Set(uris));
        },
        // The engine did not answer: the next change of the set reads it again.
        () => undefined,
      );
  }

  private index(stream: SessionStream, uris: Set<string>): void {
    for (const uri of stream.uris) if (!uris.has(uri)) this.unindex(uri, stream);
    for (const uri of uris) {
      let streams = this.byUri.get(uri);
      if (!streams) this.byUri.set(uri, (streams = new Set()));
      streams.add(stream);
    }
    stream.uris = uris;
  }

  private unindex(uri: string, stream: SessionStream): void {
    const streams = this.byUri.get(uri);
    streams?.delete(stream);
    if (streams?.size === 0) this.byUri.delete(uri);
  }

  private detach(stream: SessionStream): void {
    if (stream.detached) return;
    stream.detached = true;
    for (const uri of stream.uris) this.unindex(uri, stream);
    if (this.bySession.get(stream.sessionId) === stream) this.bySession.delete(stream.sessionId);
  }
}

/** A change as a 2025 stream carries it: a JSON-RPC notification. */
function message(change: McpChange): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    method: change.method,
    ...(change.params ? { params: change.params } : {}),
  });
}
