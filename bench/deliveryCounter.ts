/**
 * What a load generator (bench/loadgen.ts) counts on its SSE streams, whatever the server's
 * framing: nchan opens with a `: hi` comment and sends no `event:` line (its `id:` is
 * `<time>:<n>`), the project opens with a welcome event and names every event. So a stream
 * counts as open at its first line, whatever it is, and broadcasts are recognised by their
 * `data:` line, which both servers pass through as the benchmark POSTed it (the benchmark
 * controls the key order: `type`, then `seq`, then `sentAt`).
 */
import { Histogram } from './histogram';
import { BENCH_EVENT, WARM_EVENT } from './protocol';

const DATA_PREFIX = `data: {"type":"${BENCH_EVENT}","seq":`;
const WARM_PREFIX = `data: {"type":"${WARM_EVENT}",`;
const SENT_AT = '"sentAt":';
const BENCH_LINE = `event: ${BENCH_EVENT}`;
const WARM_LINE = `event: ${WARM_EVENT}`;

export interface CountedStream {
  /** An incomplete last line, kept for the next chunk. */
  carry: string;
  /** Set at the stream's first complete line. */
  welcomed: boolean;
  /** Copies received of each measured broadcast, by seq. */
  got: Uint8Array;
}

/** The counters of one measurement, over every stream of a load generator. */
export class DeliveryCounter {
  /** Warm-up broadcasts' data lines. */
  warm = 0;
  /** `event: bench` lines (the project names its events; nchan sends none). */
  benchEvents = 0;
  /** Measured broadcasts' data lines. */
  deliveries = 0;
  /** Every other `event:` line (the project's welcome, heartbeat, connection-status). */
  otherEvents = 0;
  /** Epoch ms (fractional) of the last measured delivery. */
  lastArrival = 0;
  /** From the `sentAt` in the message to `now` at arrival, ms. */
  readonly latency = new Histogram();

  /**
   * Scans a chunk's complete lines (the rest waits in `stream.carry`); `now` is the arrival
   * time in epoch ms. Returns true when this chunk completed the stream's first line.
   */
  onChunk(stream: CountedStream, chunk: string, now: number): boolean {
    const text = stream.carry ? stream.carry + chunk : chunk;
    let opened = false;
    if (!stream.welcomed && text.includes('\n')) {
      stream.welcomed = true;
      opened = true;
    }
    let pos = 0;
    for (;;) {
      const nl = text.indexOf('\n', pos);
      if (nl < 0) break;
      const first = text.charCodeAt(pos);
      if (first === 101 /* e */ && text.startsWith('event: ', pos)) {
        if (nl - pos === BENCH_LINE.length && text.startsWith(BENCH_LINE, pos)) this.benchEvents++;
        else if (!(nl - pos === WARM_LINE.length && text.startsWith(WARM_LINE, pos))) {
          this.otherEvents++;
        }
      } else if (first === 100 /* d */) {
        if (text.startsWith(DATA_PREFIX, pos)) {
          this.onMeasured(stream, text, pos + DATA_PREFIX.length, nl, now);
        } else if (text.startsWith(WARM_PREFIX, pos)) this.warm++;
      }
      pos = nl + 1;
    }
    stream.carry = pos < text.length ? text.slice(pos) : '';
    return opened;
  }

  /** `<seq>,"sentAt":<ms>,...`: counted, and its latency recorded. */
  private onMeasured(
    stream: CountedStream,
    text: string,
    from: number,
    end: number,
    now: number,
  ): void {
    let seq: number;
    let sentAt: number;
    const comma = text.indexOf(',', from);
    const sentFrom = comma + 1 + SENT_AT.length;
    const sentEnd = text.indexOf(',', sentFrom);
    if (
      comma > 0 &&
      comma < end &&
      text.startsWith(SENT_AT, comma + 1) &&
      sentEnd > 0 &&
      sentEnd < end
    ) {
      seq = Number(text.slice(from, comma));
      sentAt = Number(text.slice(sentFrom, sentEnd));
    } else {
      const data = JSON.parse(text.slice(from - DATA_PREFIX.length + 6, end)) as {
        seq: number;
        sentAt: number;
      };
      seq = data.seq;
      sentAt = data.sentAt;
    }
    this.deliveries++;
    this.lastArrival = now;
    if (seq >= 0 && seq < stream.got.length && stream.got[seq] < 255) stream.got[seq]++;
    this.latency.record(now - sentAt);
  }
}

/** (connection, seq) pairs of the open streams that never arrived, and extra copies. */
export function tally(streams: CountedStream[]): { missing: number; duplicates: number } {
  let missing = 0;
  let duplicates = 0;
  for (const s of streams) {
    if (!s.welcomed) continue;
    for (const n of s.got) {
      if (n === 0) missing++;
      else duplicates += n - 1;
    }
  }
  return { missing, duplicates };
}
