import type { ServerResponse } from 'node:http';
import zlib from 'node:zlib';

/**
 * Per-socket gzip for SSE streams (SSE_COMPRESSION=gzip). Each flush of a stream's frames is
 * deflated and sync-flushed (Z_SYNC_FLUSH) in one synchronous call, so the bytes on the wire
 * always end on a block boundary: a browser's EventSource, `curl --compressed` or the
 * `eventsource` package decode each event as soon as it arrives. The writer's backpressure is
 * unchanged: the compressed bytes go to the socket as one write, as the plain ones would.
 *
 * Memory: deflate keeps a window of 2^(windowBits+2) bytes and a hash of 2^(memLevel+9) bytes:
 * with windowBits 12 and memLevel 5, 16 KiB + 16 KiB, plus zlib's state (~6 KiB) and a 4 KiB
 * output buffer: about 42 KiB per compressed stream (420 MiB for 10,000), against 256 KiB at
 * zlib's defaults. The 4 KiB window still spans many small events, whose JSON repeats itself.
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
  level: 6,
  chunkSize: 4096,
};

/** zlib's own synchronous step (what gzipSync runs): compress and flush without a callback. */
interface SyncZlib {
  _processChunk(chunk: Buffer, flushFlag: number): Buffer;
}

export type StreamGzip = zlib.Gzip;

export function createStreamGzip(): StreamGzip {
  return zlib.createGzip(STREAM_GZIP_OPTIONS);
}

/** Compresses `data` and sync-flushes: the returned bytes decode to all of `data`. */
export function gzipFrame(gzip: StreamGzip, data: string | Buffer): Buffer {
  const input = typeof data === 'string' ? Buffer.from(data) : data;
  return (gzip as unknown as SyncZlib)._processChunk(input, zlib.constants.Z_SYNC_FLUSH);
}

/** The end of the gzip member (final block and trailer). */
export function gzipEnd(gzip: StreamGzip): Buffer {
  return (gzip as unknown as SyncZlib)._processChunk(Buffer.alloc(0), zlib.constants.Z_FINISH);
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
