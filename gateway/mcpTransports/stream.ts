import type { Request, Response } from 'express';
import type { Metrics } from '../../shared/metrics';
import { markStreamStarted } from '../middleware/requestMetrics';
import { eventBody, idLine } from '../seed/frame';
import { OVERFLOW, SseWriter } from '../sse/writer';

const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/**
 * The SSE `retry:` each MCP stream starts with: how long a client waits before reconnecting a
 * stream that ended (the SDK client uses it for each of its attempts). Long enough for a
 * stopped pod's standalone-stream lock to be taken over (see standaloneLock.ts), short enough
 * that a drained client is back at once.
 */
export const STREAM_RETRY_MS = 2000;

const STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache, no-transform',
  Connection: 'keep-alive',
  'X-Accel-Buffering': 'no',
});

/**
 * One SSE response of an MCP transport (a POST's request stream, the standalone GET stream, a
 * resumed stream, a legacy SSE stream), written by the SSE writer. Short-lived state only; the
 * keep-alive ticks come from McpStreamKeeper's one timer.
 *
 * A session stream's body is delimited by the connection's close (the HTTP layer is let go of
 * after the head); a request stream is chunked, so the client reuses its connection once the
 * stream ended with the last reply.
 */
export class McpSseStream extends SseWriter {
  private ended = false;
  private readonly closeHandlers: (() => unknown)[] = [];
  private releasing: Promise<unknown>[] = [];
  /** Until the head is sent. */
  private req: Request | null;
  private res: Response | null;
  /** Run on each keep-alive tick while open (lock and session refresh). */
  onTick?: () => void;
  /**
   * Run when this side ends the open stream (drain, shutdown, token expiry; not when the peer
   * left), before it closes: a last message (a listen stream's graceful end).
   */
  onEnd?: () => void;

  /**
   * `request`: a POST's stream (or its resumption), which ends by itself with the last reply;
   * `session`: a stream that lasts as long as the client stays (standalone GET, legacy SSE).
   * A client that stops reading is cut off once `maxBufferedBytes` wait for it: it resumes from
   * its last id (nothing is lost, the stream's history holds it).
   */
  constructor(
    req: Request,
    res: Response,
    readonly kind: 'request' | 'session' = 'request',
    maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES,
  ) {
    super({ maxBytes: maxBufferedBytes, maxEvents: Infinity });
    this.req = req;
    this.res = res;
    this.watchResponse(res);
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Sends the status line and headers, then the `retry:` field. */
  open(_metrics: Metrics, headers: Record<string, string> = {}): void {
    const { req, res } = this;
    if (this.ended || !req || !res) return;
    this.req = this.res = null;
    markStreamStarted(res);
    const framing = this.kind === 'session' ? 'close' : 'chunked';
    if (this.sendHead(res, { ...STREAM_HEADERS, ...headers }, framing)) {
      this.writeFrame('', `retry: ${STREAM_RETRY_MS}\n\n`);
    }
  }

  /** `id:` (when given), `event:` and `data:` lines. */
  event(id: string | undefined, event: string, data: string): void {
    if (this.ended) return;
    const written = this.writeFrame(id === undefined ? '' : idLine(id), eventBody(event, data));
    if (written === OVERFLOW) this.destroy();
  }

  /** An event with an id and empty data: where a client may resume from (it dispatches nothing). */
  prime(id: string): void {
    if (!this.ended) this.writeFrame(idLine(id), 'data: \n\n');
  }

  comment(text: string): void {
    if (!this.ended && !this.isBlocked) this.writeFrame('', `: ${text}\n\n`);
  }

  /** Runs `handler` once the stream closes; a promise it returns is awaited by `released()`. */
  onClose(handler: () => unknown): void {
    if (this.ended) this.releasing.push(runHandler(handler));
    else this.closeHandlers.push(handler);
  }

  /** Settles once the stream closed and its close handlers' work (locks, registry) is done. */
  async released(): Promise<void> {
    await Promise.allSettled(this.releasing);
  }

  /** Ends the stream with an SSE comment saying why (the transport has no event for it). */
  endWith(reason: string): void {
    this.comment(reason);
    this.end();
  }

  end(): void {
    if (this.ended) return;
    if (!this.res) {
      const onEnd = this.onEnd;
      this.onEnd = undefined;
      onEnd?.();
    }
    // Not opened yet: an empty answer, as before the stream would have started.
    if (this.res) this.res.end();
    this.req = this.res = null;
    this.endWire();
    this.finish();
  }

  /** A client that stopped reading: cut off at once. */
  private destroy(): void {
    this.destroyWire();
    this.finish();
  }

  protected onPeerClose(): void {
    this.req = this.res = null;
    this.finish();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    for (const handler of this.closeHandlers.splice(0)) this.releasing.push(runHandler(handler));
  }
}

/** A close handler never stops the others, nor rejects unhandled. */
function runHandler(handler: () => unknown): Promise<unknown> {
  try {
    return Promise.resolve(handler()).catch(() => undefined);
  } catch {
    return Promise.resolve();
  }
}

/** The open MCP streams of this pod, kept alive by one timer (no timer per stream). */
export class McpStreamKeeper {
  private readonly streams = new Set<McpSseStream>();
  private timer?: NodeJS.Timeout;

  constructor(readonly intervalMs: number) {}

  get size(): number {
    return this.streams.size;
  }

  add(stream: McpSseStream): void {
    if (stream.closed) return;
    this.streams.add(stream);
    stream.onClose(() => this.streams.delete(stream));
    this.timer ??= setInterval(() => this.tick(), this.intervalMs).unref();
  }

  /**
   * Drain: ends the session streams (standalone GET, legacy SSE) at once, so their clients
   * reconnect to another pod, and waits for their locks and registry entries to be released.
   */
  async endSessionStreams(): Promise<void> {
    const ending = [...this.streams].filter((stream) => stream.kind === 'session');
    for (const stream of ending) stream.end();
    await Promise.all(ending.map((stream) => stream.released()));
  }

  /**
   * Shutdown: ends the session streams at once, lets request streams finish their call for up
   * to `graceMs`, then ends what is left (clients of 2025-11-25 resume those elsewhere with
   * Last-Event-ID), and waits until every stream's engine state is released.
   */
  async close(graceMs: number): Promise<void> {
    const all = [...this.streams];
    await this.endSessionStreams();
    const deadline = Date.now() + graceMs;
    while (this.streams.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const rest = [...this.streams];
    for (const stream of rest) stream.end();
    this.streams.clear();
    await Promise.all([...all, ...rest].map((stream) => stream.released()));
  }

  private tick(): void {
    for (const stream of this.streams) {
      stream.comment('keep-alive');
      stream.onTick?.();
    }
  }
}
