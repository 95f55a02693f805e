import type { Engine, EngineEvent } from '../../shared/engine/engine';
import { ZERO_EVENT_ID, compareEventIds } from '../../shared/engine/eventId';
import { historyPages } from '../../shared/engine/history';
import { MCP_EVENTS, RPC_ERRORS } from '../../shared/protocol';

export interface RelaySink {
  /** A JSON-RPC message of the stream (`entryId`: its engine event id; `kind`: its event name). */
  message(entryId: string, data: string, kind: string): void;
  /** The stream is complete (every reply arrived) or the session ended. */
  done(): void;
}

/**
 * Feeds one stream topic's events to a sink, in order and once each: live events as they come,
 * optionally after replaying the topic's history (live events arriving meanwhile are held and
 * flushed after it, duplicates dropped by id). Counts replies (a response, or a cancelled
 * request's end) and reports done once `replies` arrived, whether replayed or live.
 *
 * One final answer per request: when Redis lost a command, the gateway answers it -32012 and a
 * worker that still ran it may publish its result too; whichever comes second is dropped. A
 * stream of one request ends with its first reply anyway; a batch's stream tells its requests
 * apart by id (only a -32012 causes or suffers a drop, so a batch reusing an id, which MCP
 * forbids, still gets every reply).
 */
export class StreamRelay {
  private last = ZERO_EVENT_ID;
  private repliesSeen = 0;
  private held?: EngineEvent[];
  private finished = false;
  /** A batch's request ids answered so far (JSON text), and whether one answer was -32012. */
  private readonly answered?: Map<string, boolean>;

  /**
   * `replies`: how many replies end the stream (Infinity: only the session's end does).
   * `deliverAfter`: messages up to this id were delivered before (a resume) and are only counted.
   */
  constructor(
    private readonly sink: RelaySink,
    private readonly replies: number,
    private readonly deliverAfter = ZERO_EVENT_ID,
  ) {
    if (replies > 1 && Number.isFinite(replies)) this.answered = new Map();
  }

  /** The subscription's listener. */
  readonly listener = (event: EngineEvent): void => {
    if (this.held) this.held.push(event);
    else this.process(event);
  };

  /** Replays the topic's history (subscribe with `listener` first). */
  async replay(engine: Pick<Engine, 'readHistory'>, topic: string): Promise<void> {
    this.held = [];
    try {
      for await (const page of historyPages(engine, topic, ZERO_EVENT_ID)) {
        for (const event of page.events) this.process(event);
      }
    } finally {
      const held = this.held;
      this.held = undefined;
      for (const event of held) this.process(event);
    }
  }

  private process(event: EngineEvent): void {
    if (this.finished || compareEventIds(event.id, this.last) <= 0) return;
    this.last = event.id;
    if (event.event === MCP_EVENTS.response && this.answeredBefore(event.data)) return;
    switch (event.event) {
      case MCP_EVENTS.notification:
      case MCP_EVENTS.response:
        if (compareEventIds(event.id, this.deliverAfter) > 0) {
          this.sink.message(event.id, event.data, event.event);
        }
        break;
      case MCP_EVENTS.sessionEnded:
        this.finish();
        return;
    }
    if (event.event === MCP_EVENTS.response || event.event === MCP_EVENTS.cancelled) {
      this.repliesSeen += 1;
      if (this.repliesSeen >= this.replies) this.finish();
    }
  }

  /** True when this reply repeats a batch request's answer, one of the two a -32012. */
  private answeredBefore(data: string): boolean {
    if (!this.answered) return false;
    let reply: { id?: unknown; error?: { code?: unknown } };
    try {
      reply = JSON.parse(data) as typeof reply;
    } catch {
      return false;
    }
    const id = JSON.stringify(reply.id ?? null);
    const lost = reply.error?.code === RPC_ERRORS.commandLost;
    const before = this.answered.get(id);
    if (before !== undefined && (before || lost)) return true;
    this.answered.set(id, lost);
    return false;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.sink.done();
  }
}
