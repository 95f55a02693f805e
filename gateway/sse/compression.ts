import type { ServerResponse } from 'node:http';
import zlib from 'node:zlib';

/**
 * Per-socket gzip for SSE streams (SSE_COMPRESSION=gzip). Each flush of a stream's frames is
 * deflated and sync-flushed (Z_SYNC_FLUSH) in one synchronous call, so the bytes on the wire
 * always end on a block boundary: a browser's EventSource, `curl --compressed` or the
 * `eventsource` package decode each event as soon as it arrives. The writer's backpressure is
 * unchanged: the compressed bytes go to the socket as one write, as the plain ones would.
 *
 * Memory: deflate asks for a window of 2^(windowBits+2) bytes and a hash of 2^(memLevel+9)
 * bytes, 16 + 16 KiB here; Node 20's zlib keeps a 64 KiB hash whatever memLevel asks, so a
 * compressed stream measures about 100 KiB of RSS (215 KiB at zlib's defaults). A 4 KiB
 * window still spans many small events, whose JSON repeats itself.
 */
let enabled = false;

/** SSE_COMPRESSION, set once at start-up (createGatewayApp). Off: no stream or body is touched. */
export function setCompression(mode: 'off' | 'gzip'): void {
  enabled = mode === 'gzip';
}

export function compressionOn(): boolean {
  return enabled;
}

const STREAM_GZIP_OPTIONS: zlib.ZlibOptions = {
  windowBits: 12,
  memLevel: 5,
  // A broadcast is deflated once per socket: the fastest level keeps most of the saving (SSE
  // frames repeat their field names and JSON keys) at a fraction of level 6's CPU (make bench,
  // `compression`).
  level: zlib.constants.Z_BEST_SPEED,
  // The stream's own output buffer is never used (deflateStep writes to the shared scratch).
  chunkSize: zlib.constants.Z_MIN_CHUNK,
};

/**
 * The native deflate handle under a zlib stream. Its synchronous step is driven here directly:
 * Node's own sync path (what gzipSync runs) closes the stream after one call, and the stream
 * API is asynchronous (a thread-pool task per flush, the bytes reaching the socket later than
 * the writer's backpressure checks look).
 */
interface ZlibHandle {
  _handle: {
    writeSync(
      flush: number,
      input: Buffer,
      inOff: number,
      inLen: number,
      out: Buffer,
      outOff: number,
      outLen: number,
    ): void;
  } | null;
  /** After writeSync: [output space left, input left]. */
  _writeState: Uint32Array;
}

export type StreamGzip = zlib.Gzip;

/** Deflate writes here, then its output is copied out: no output buffer held per stream. */
const scratch = Buffer.allocUnsafe(64 * 1024);

export function createStreamGzip(): StreamGzip {
  const gzip = zlib.createGzip(STREAM_GZIP_OPTIONS);
  // Deflating bytes in memory fails only when memory does; never an unhandled 'error'.
  gzip.on('error', ignore);
  return gzip;
}

function ignore(): void {}

function deflateStep(gzip: StreamGzip, input: Buffer, flushFlag: number): Buffer {
  const z = gzip as unknown as ZlibHandle;
  const handle = z._handle;
  if (!handle) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  let inOff = 0;
  let inLen = input.length;
  for (;;) {
    handle.writeSync(flushFlag, input, inOff, inLen, scratch, 0, scratch.length);
    const outLeft = z._writeState[0];
    const inLeft = z._writeState[1];
    const have = scratch.length - outLeft;
    if (have > 0) parts.push(Buffer.from(scratch.subarray(0, have)));
    inOff += inLen - inLeft;
    inLen = inLeft;
    // Output space left over: deflate took all the input and flushed it.
    if (outLeft !== 0) break;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** Compresses `data` and sync-flushes: the returned bytes decode to all of `data`. */
export function gzipFrame(gzip: StreamGzip, data: string | Buffer): Buffer {
  const input = typeof data === 'string' ? Buffer.from(data) : data;
  return deflateStep(gzip, input, zlib.constants.Z_SYNC_FLUSH);
}

/** The end of the gzip member (final block and trailer). */
export function gzipEnd(gzip: StreamGzip): Buffer {
  return deflateStep(gzip, Buffer.alloc(0), zlib.constants.Z_FINISH);
}

/**
 * True when an Accept-Encoding header accepts gzip: `gzip`, `x-gzip` or `*` with a q above 0
 * (an explicit `gzip;q=0` refuses it even with `*`).
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star = false;
  for (const part of header.split(',')) {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const accepted = q === undefined || Number(q.slice(2)) > 0;
    if (coding === 'gzip' || coding === 'x-gzip') return accepted;
    if (coding === '*') star = accepted;
  }
  return star;
}

/** JSON bodies from this size on are gzipped for clients that accept it (SSE_COMPRESSION=gzip). */
export const JSON_GZIP_MIN_BYTES = 1024;

/**
 * A JSON body as sent: gzipped (with its headers set) when compression is on, the body is at
 * least JSON_GZIP_MIN_BYTES and the client accepts gzip; else the text as it is.
 */
export function jsonBodyFor(
  res: ServerResponse,
  text: string,
  bytes = Buffer.byteLength(text),
): string | Buffer {
  if (!enabled || bytes < JSON_GZIP_MIN_BYTES) return text;
  res.setHeader('Vary', 'Accept-Encoding');
  if (!acceptsGzip(res.req.headers['accept-encoding'])) return text;
  res.setHeader('Content-Encoding', 'gzip');
  return zlib.gzipSync(text, { level: 6 });
}
