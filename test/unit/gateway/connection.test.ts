import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { OVERFLOW, SKIPPED, SseConnection } from '../../../gateway/seed/connection';
import { eventBody } from '../../../gateway/seed/frame';

/** Just enough of a ServerResponse: records writes, reports backpressure on demand. */
class FakeResponse extends EventEmitter {
  written: string[] = [];
  headers: Record<string, string> | undefined;
  full = false;
  corks = 0;
  writableEnded = false;
  destroyed = false;
  socketEnded = false;
  socket = { destroyed: false, end: () => (this.socketEnded = true) };
  writeHead(status: number, headers: Record<string, string>) {
    expect(status).toBe(200);
    this.headers = headers;
    return this;
  }
  write(chunk: string | Buffer) {
    this.written.push(String(chunk));
    return !this.full;
  }
  cork() {
    this.corks++;
  }
  uncork() {
    this.corks--;
  }
  end() {
    this.writableEnded = true;
  }
  destroy() {
    this.destroyed = true;
  }
  /** The wire text so far. */
  get text() {
    return this.written.join('');
  }
}

const CID = '00000000-0000-4000-8000-000000000001';

function connection(limits = { maxBytes: 1 << 20, maxEvents: 100 }) {
  const res = new FakeResponse();
  const conn = new SseConnection(
    {
      connectionId: CID,
      sub: 't',
      tokenType: 'team',
      expiresAtMs: undefined,
      clientIP: '127.0.0.1',
      connectedAt: Date.now(),
    },
    res as unknown as ServerResponse,
    limits,
  );
  return { res, conn };
}

/** After this tick's uncork and the wake-up it arranged. */
const nextTurn = () => new Promise((r) => setImmediate(() => setImmediate(r)));

const body = (name: string, n: number) => eventBody(name, JSON.stringify({ n }));

describe('SseConnection', () => {
  it('holds events that arrive while opening and writes them after the welcome, deduplicated', () => {
    const { res, conn } = connection();
    expect(conn.deliver(false, '5-0', body('mcp-response', 1))).toBe(SKIPPED);
    expect(conn.deliver(true, '7-0', Buffer.from(body('b', 1)))).toBe(SKIPPED);
    expect(conn.deliver(true, '9-0', Buffer.from(body('b', 2)))).toBe(SKIPPED);
    expect(res.written).toEqual([]);

    conn.startTypeTopicAt('7-0'); // the broadcast 7-0 came before the connection's start
    conn.open(body('mcp-notification', 0));
    expect(res.headers?.['Content-Type']).toBe('text/event-stream');
    expect(res.text).toBe(
      `id: ${CID}_0-0_7-0\n${body('mcp-notification', 0)}` +
        `id: ${CID}_5-0_7-0\n${body('mcp-response', 1)}` +
        `id: ${CID}_5-0_9-0\n${body('b', 2)}`,
    );
  });

  it('drops events at or before the cursor of their topic', () => {
    const { res, conn } = connection();
    conn.open(body('w', 0));
    expect(conn.deliver(false, '2-0', body('r', 1))).toBeGreaterThan(0);
    expect(conn.deliver(false, '2-0', body('r', 1))).toBe(SKIPPED);
    expect(conn.deliver(false, '1-9', body('r', 0))).toBe(SKIPPED);
    expect(conn.deliver(true, '1-0', Buffer.from(body('b', 1)))).toBeGreaterThan(0);
    expect(conn.deliver(true, '1-0', Buffer.from(body('b', 1)))).toBe(SKIPPED);
    expect(conn.eventId).toBe(`${CID}_2-0_1-0`);
    expect(res.text.match(/^id: /gm)).toHaveLength(3);
  });

  it('corks the socket for the rest of the tick', async () => {
    const { res, conn } = connection();
    conn.open(body('w', 0));
    conn.sendLocal(body('h', 1), true);
    expect(res.corks).toBe(1);
    await new Promise((r) => process.nextTick(r));
    expect(res.corks).toBe(0);
  });

  it('queues under backpressure, skips heartbeats, and flushes in order on drain', async () => {
    const { res, conn } = connection();
    conn.open(body('w', 0));
    res.full = true;
    conn.deliver(false, '1-0', body('r', 1)); // accepted by the socket, which is now full
    const before = res.written.length;
    expect(conn.deliver(false, '2-0', body('r', 2))).toBeGreaterThan(0);
    expect(conn.deliver(true, '3-0', Buffer.from(body('b', 3)))).toBeGreaterThan(0);
    expect(conn.sendLocal(body('heartbeat', 0), true)).toBe(SKIPPED);
    expect(res.written.length).toBe(before);

    res.full = false;
    await nextTurn(); // the socket took it: the queue is flushed on the next turn
    expect(res.written.slice(before).join('')).toBe(
      `id: ${CID}_2-0_0-0\n${body('r', 2)}id: ${CID}_2-0_3-0\n${body('b', 3)}`,
    );
    expect(conn.sendLocal(body('heartbeat', 0), true)).toBeGreaterThan(0);
  });

  it('coalesces queued progress per request (latest wins) and never drops a result', async () => {
    const progress = (requestId: string, n: number) =>
      eventBody(
        'tool-result',
        JSON.stringify({
          type: 'tool-result',
          method: 'slow',
          requestId,
          metadata: { progress: { progress: n, message: '"result": no' } },
          timestamp: 't',
        }),
      );
    const result = (requestId: string) =>
      eventBody(
        'tool-result',
        JSON.stringify({
          type: 'tool-result',
          method: 'slow',
          requestId,
          result: { metadata: { progress: 1 } },
          timestamp: 't',
        }),
      );

    const { res, conn } = connection({ maxBytes: 1 << 20, maxEvents: 4 });
    conn.open(body('w', 0));
    res.full = true;
    conn.deliver(false, '1-0', body('r', 0)); // accepted, the socket is now full
    const before = res.written.length;
    // The hub names the request of each tool-progress event (its own kind on the engine).
    conn.deliver(false, '2-0', progress('a', 1), 'a');
    conn.deliver(false, '3-0', progress('b', 1), 'b');
    conn.deliver(false, '4-0', result('b'));
    conn.deliver(false, '5-0', progress('a', 2), 'a');
    for (let i = 3; i <= 9; i++)
      expect(conn.deliver(false, `6-${i}`, progress('a', i), 'a')).toBeGreaterThan(0);
    expect(conn.deliver(false, '7-0', result('a'))).toBeGreaterThan(0);
    res.full = false;
    await nextTurn();
    const wire = res.written.slice(before).join('');
    const ids = [...wire.matchAll(/^id: [^_]+_([^_]+)_/gm)].map((m) => m[1]);
    expect(ids).toEqual(['3-0', '4-0', '6-9', '7-0']);
    expect(wire).toContain('"progress":9');
    expect(wire).not.toContain('"progress":2,');
  });

  it('reports OVERFLOW past the event or byte bound', () => {
    const { res, conn } = connection({ maxBytes: 1 << 20, maxEvents: 3 });
    conn.open(body('w', 0));
    res.full = true;
    conn.deliver(false, '1-0', body('r', 0));
    for (let i = 1; i <= 3; i++)
      expect(conn.deliver(false, `${i + 1}-0`, body('r', i))).toBeGreaterThan(0);
    expect(conn.deliver(false, '9-0', body('r', 9))).toBe(OVERFLOW);

    const small = connection({ maxBytes: 200, maxEvents: 100 });
    small.conn.open(body('w', 0));
    small.res.full = true;
    small.conn.deliver(false, '1-0', body('r', 0));
    expect(small.conn.deliver(false, '2-0', eventBody('r', 'x'.repeat(100)))).toBeGreaterThan(0);
    expect(small.conn.deliver(false, '3-0', eventBody('r', 'x'.repeat(100)))).toBe(OVERFLOW);
  });

  it('is stuck when still backed up at two sweeps in a row, not when it drained between', async () => {
    const { res, conn } = connection();
    conn.open(body('w', 0));
    expect(conn.isStuck()).toBe(false);
    res.full = true;
    conn.deliver(false, '1-0', body('r', 1));
    expect(conn.isStuck()).toBe(false); // first sweep that sees it blocked
    res.full = false;
    await nextTurn(); // the socket took it: the queue is flushed on the next turn
    expect(conn.isStuck()).toBe(false);
    res.full = true;
    conn.deliver(false, '2-0', body('r', 2));
    expect(conn.isStuck()).toBe(false);
    expect(conn.isStuck()).toBe(true);
  });

  it('writes nothing once closed', () => {
    const { res, conn } = connection();
    conn.open(body('w', 0));
    conn.end();
    // The socket is ended (no closing chunk: no client reuses it for another request).
    expect(res.socketEnded).toBe(true);
    const count = res.written.length;
    expect(conn.deliver(false, '1-0', body('r', 1))).toBe(SKIPPED);
    expect(conn.sendLocal(body('s', 1), false)).toBe(SKIPPED);
    expect(res.written.length).toBe(count);
  });
});
