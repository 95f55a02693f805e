import { gunzipSync, constants } from 'node:zlib';
import {
  acceptsGzip,
  createStreamGzip,
  gzipEnd,
  gzipFrame,
} from '../../../gateway/sse/compression';
import { parseEventFilter } from '../../../gateway/seed/eventFilter';

describe('acceptsGzip', () => {
  it.each([
    ['gzip', true],
    ['gzip, deflate, br', true],
    ['br;q=1.0, gzip;q=0.8', true],
    ['x-gzip', true],
    ['*', true],
    ['identity', false],
    ['gzip;q=0', false],
    ['*, gzip;q=0', false],
    ['deflate', false],
    ['', false],
  ])('%j: %s', (header, expected) => {
    expect(acceptsGzip(header)).toBe(expected);
  });
  it('is false without the header', () => expect(acceptsGzip(undefined)).toBe(false));
});

describe('a stream gzip', () => {
  it('decodes each frame on its own as it is written, and ends as a whole gzip member', () => {
    const gzip = createStreamGzip();
    const frames = [
      'event: a\ndata: 1\n\n',
      Buffer.from(`event: b\ndata: ${'x'.repeat(200_000)}\n\n`),
    ];
    const out: Buffer[] = [];
    for (const frame of frames) {
      out.push(gzipFrame(gzip, frame));
      // Sync-flushed: what was written so far decodes to every frame so far.
      const sofar = gunzipSync(Buffer.concat(out), { finishFlush: constants.Z_SYNC_FLUSH });
      expect(sofar.toString()).toBe(frames.slice(0, out.length).join(''));
    }
    out.push(gzipEnd(gzip));
    gzip.close();
    expect(gunzipSync(Buffer.concat(out)).toString()).toBe(frames.join(''));
  });
});

describe('parseEventFilter', () => {
  it('is null without a filter', () => {
    expect(parseEventFilter(undefined, undefined)).toBeNull();
    expect(parseEventFilter(' ', '')).toBeNull();
  });
  it('takes the header over the query, and always lets connection-status through', () => {
    expect([...parseEventFilter('mcp-error', 'tool-result')!].sort()).toEqual([
      'connection-status',
      'mcp-error',
    ]);
  });
  it('names broadcast types with broadcast:', () => {
    expect(parseEventFilter(undefined, 'tool-result, broadcast:a:b')!.has('a:b')).toBe(true);
  });
  it('refuses unknown names with a 400 listing the known ones', () => {
    expect(() => parseEventFilter(undefined, 'tool-results')).toThrow(
      /known: tool-result, mcp-response/,
    );
    expect(() => parseEventFilter(undefined, 'broadcast:')).toThrow(/Unknown event name/);
    expect(() => parseEventFilter(undefined, 'x'.repeat(3000))).toThrow(/longer than/);
  });
});
