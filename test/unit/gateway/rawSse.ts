import http from 'node:http';

/** One event as it came over the wire, with its raw text. */
export interface WireEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
  raw: string;
}

export interface RawSseStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  events: WireEvent[];
  /** The first received (or future) event matching, or a rejection after timeoutMs. */
  next(predicate: (e: WireEvent) => boolean, timeoutMs?: number): Promise<WireEvent>;
  /** Resolves when the server ends or drops the stream. */
  ended: Promise<void>;
  /** Everything received, once the response ended (an error answer's JSON, say). */
  text(): Promise<string>;
  /** Stops reading (a slow client): the server's writes back up. */
  pause(): void;
  close(): void;
}

/**
 * GET `url` with raw node http and parse the SSE stream by hand: for checks on exact headers and
 * framing, and on how the server ends a stream (the eventsource package hides both).
 */
export function openRawSse(
  url: string,
  headers: Record<string, string> = {},
): Promise<RawSseStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
      const events: WireEvent[] = [];
      const waiters = new Set<{
        predicate: (e: WireEvent) => boolean;
        resolve: (e: WireEvent) => void;
      }>();
      let buffer = '';
      let all = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        all += chunk;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const raw = buffer.slice(0, end + 2);
          buffer = buffer.slice(end + 2);
          const event = parseEvent(raw);
          events.push(event);
          for (const w of [...waiters]) {
            if (w.predicate(event)) {
              waiters.delete(w);
              w.resolve(event);
            }
          }
        }
      });
      const ended = new Promise<void>((done) => {
        res.on('end', done);
        res.on('close', done);
        res.on('error', () => done());
      });
      const next = (predicate: (e: WireEvent) => boolean, timeoutMs = 5000) => {
        const seen = events.find(predicate);
        if (seen) return Promise.resolve(seen);
        return new Promise<WireEvent>((ok, fail) => {
          const timer = setTimeout(() => {
            waiters.delete(waiter);
            fail(
              new Error(`no matching event in ${timeoutMs} ms; got ${events.map((e) => e.event)}`),
            );
          }, timeoutMs);
          const waiter = {
            predicate,
            resolve: (e: WireEvent) => {
              clearTimeout(timer);
              ok(e);
            },
          };
          waiters.add(waiter);
        });
      };
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        next,
        ended,
        text: () => ended.then(() => all),
        pause: () => res.pause(),
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

function parseEvent(raw: string): WireEvent {
  const event: WireEvent = { id: undefined, event: undefined, data: '', raw };
  const data: string[] = [];
  for (const line of raw.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') event.id = value;
    else if (field === 'event') event.event = value;
    else if (field === 'data') data.push(value);
  }
  event.data = data.join('\n');
  return event;
}
