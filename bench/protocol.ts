/** Messages between the benchmark (bench/run.ts) and its load generators (bench/loadgen.ts). */
import type { HistogramData } from './histogram';

/** The event name of measured broadcasts, and of the unmeasured warm-up ones. */
export const BENCH_EVENT = 'bench';
export const WARM_EVENT = 'bench-warm';

export type ToLoadgen =
  | {
      cmd: 'open';
      /** Stream URLs (a gateway's /mcp/sse, nchan's subscriber location): spread round-robin. */
      urls: string[];
      /** Headers of each stream's GET (the project's Authorization). */
      headers: Record<string, string>;
      /** Connections this process opens and holds. */
      count: number;
      /** Connections being opened at once. */
      concurrency: number;
    }
  | {
      /** A new measurement: every counter starts again at 0, on every stream. */
      cmd: 'expect';
      /** Measured broadcasts to expect (seq 0 .. broadcasts-1). */
      broadcasts: number;
      /** Echoed in the progress messages once done. */
      epoch: number;
    }
  | { cmd: 'report' }
  | { cmd: 'close' };

export interface LoadgenProgress {
  type: 'progress';
  opened: number;
  failed: number;
  warm: number;
  deliveries: number;
  /** The last `expect` handled. */
  epoch: number;
}

export interface LoadgenReport {
  type: 'report';
  opened: number;
  failed: number;
  /** The first few failure messages. */
  failures: string[];
  /** Warm-up broadcasts' data lines. */
  warm: number;
  /** `event: bench` lines (the project names its events; nchan sends none). */
  benchEvents: number;
  /** Measured broadcast data lines, parsed (one per delivery). */
  deliveries: number;
  /** (connection, seq) pairs that arrived more than once, counted once per extra copy. */
  duplicates: number;
  /** (connection, seq) pairs of an open connection that never arrived. */
  missing: number;
  /** Every other `event:` line (the project's welcome, heartbeat, connection-status). */
  otherEvents: number;
  /** Streams the server ended before the load generator closed them. */
  unexpectedCloses: number;
  /** Latency from the POST's send time to arrival, in ms. */
  latency: HistogramData;
  /** Epoch ms (fractional) of the last measured delivery; 0 when none arrived. */
  lastArrival: number;
  /** This load generator's own CPU time (user + system), µs. */
  cpuMicros: number;
  /** Response body bytes read off the sockets since the last `expect`, compressed or not. */
  wireBytes: number;
  /** Streams whose response came with `Content-Encoding: gzip` (decompressed as they arrive). */
  gzipStreams: number;
  /** The project's open streams' connection ids, from their welcome (each its own topic). */
  connectionIds: string[];
}

export type FromLoadgen = LoadgenProgress | LoadgenReport | { type: 'error'; message: string };
