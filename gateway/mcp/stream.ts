import type { Request, Response } from 'express';
import type { Metrics } from '../../shared/metrics';
import { markStreamStarted } from '../middleware/requestMetrics';
import { eventBody, idLine } from '../sse/frame';

const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

const STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache, no-transform',
  Connection: 'keep-alive',
  'X-Accel-Buffering': 'no',
});

/**
 * One SSE response of an MCP transport (a POST's request stream, the standalone GET stream, a
 * resumed stream, a legacy SSE stream). Short-lived state only; the keep-alive ticks come from
 * McpStreamKeeper's one timer.
 */
export class McpSseStream {
  private ended = false;
  private readonly closeHandlers: (() => void)[] = [];
  /** Run on each keep-alive tick while open (lock and session refresh). */
  onTick?: () => void;

  /**
   * `request`: a POST's stream (or its resumption), which ends by itself with the last reply;
   * `session`: a stream that lasts as long as the client stays (standalone GET, legacy SSE).
   */
  constructor(
    private readonly req: Request,
    private readonly res: Response,
    readonly kind: 'request' | 'session' = 'request',
    private readonly maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES,
  ) {
    res.once('close', () => this.finish());
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Sends the status line and headers. */
  open(metrics: Metrics, headers: Record<string, string> = {}): void {
    this.res.status(200).set({ ...STREAM_HEADERS, ...headers });
    this.res.flushHeaders();
    markStreamStarted(this.req, this.res, metrics);
  }

  /**
   * `id:` (when given), `event:` and `data:` lines. A client that stops reading is cut off once
   * `maxBufferedBytes` wait in the socket: it resumes from its last id (nothing is lost, the
   * stream's history holds it).
   */
  event(id: string | undefined, event: string, data: string): void {
    if (this.ended) return;
    this.res.write(id === undefined ? eventBody(event, data) : idLine(id) + eventBody(event, data));
    if (this.res.writableLength > this.maxBufferedBytes) this.res.destroy();
  }

  /** An event with an id and empty data: where a client may resume from (it dispatches nothing). */
  prime(id: string): void {
    if (!this.ended) this.res.write(`${idLine(id)}data: \n\n`);
  }

  comment(text: string): void {
    if (!this.ended) this.res.write(`: ${text}\n\n`);
  }

  onClose(handler: () => void): void {
    if (this.ended) handler();
    else this.closeHandlers.push(handler);
  }

  end(): void {
    if (this.ended) return;
    this.res.end();
    this.finish();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    for (const handler of this.closeHandlers.splice(0)) {
      try {
        handler();
      } catch {
        // a close handler never stops the others
      }
    }
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
   * Shutdown: ends the session streams at once (their clients reconnect to another pod), lets
   * request streams finish their call for up to `graceMs`, then ends what is left (clients of
   * 2025-11-25 resume those elsewhere with Last-Event-ID).
   */
  async close(graceMs: number): Promise<void> {
    for (const stream of [...this.streams]) if (stream.kind === 'session') stream.end();
    const deadline = Date.now() + graceMs;
    while (this.streams.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const stream of [...this.streams]) stream.end();
    this.streams.clear();
  }

  private tick(): void {
    for (const stream of this.streams) {
      stream.comment('keep-alive');
      stream.onTick?.();
    }
  }
}
