import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { waitFor } from '../../../devSupport/waitFor';
import {
  OVERFLOW,
  SKIPPED,
  SseConnection,
  type ConnectionOwner,
} from '../../../gateway/seed/connection';
import { eventBody } from '../../../gateway/seed/frame';
import { setFlushSlice, setSseBatchWindow } from '../../../gateway/sse/writer';

/**
 * The seed connection on its SSE writer, over real sockets: a Node HTTP server hands each
 * request's response to an SseConnection, and a raw TCP client reads the exact bytes.
 */
const CID = '00000000-0000-4000-8000-000000000001';

interface Served {
  conn: SseConnection;
  res: ServerResponse;
  socket: Socket;
}

let server: http.Server;
let port: number;
let limits = { maxBytes: 1 << 20, maxEvents: 100 };
let nextServed: ((served: Served) => void) | undefined;
const gone: string[] = [];
const clients: Socket[] = [];
const owner: ConnectionOwner = { onClientGone: (_conn, reason) => gone.push(reason) };

beforeAll(async () => {
  server = http.createServer((_req: IncomingMessage, res: ServerResponse) => {
    const conn = new SseConnection(
      {
        connectionId: CID,
        sub: 't',
        tokenType: 'team',
        expiresAtMs: undefined,
        clientIP: '127.0.0.1',
        connectedAt: Date.now(),
      },
      res,
      limits,
      owner,
    );
    nextServed?.({ conn, res, socket: res.socket as Socket });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  // Detached streams are no longer the HTTP server's to close.
  for (const socket of clients) socket.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

afterEach(() => {
  setSseBatchWindow(0);
  setFlushSlice(1000);
  jest.useRealTimers();
  limits = { maxBytes: 1 << 20, maxEvents: 100 };
  gone.length = 0;
});

interface RawClient {
  socket: Socket;
  /** Everything received so far, as latin1 text. */
  text(): string;
  received(): number;
  ended: Promise<void>;
}

/** Sends a raw request and hands back the server side of it once the handler ran. */
async function connect(request = 'GET /mcp/sse HTTP/1.1\r\nHost: x\r\n\r\n') {
  const served = new Promise<Served>((resolve) => (nextServed = resolve));
  const socket = net.connect(port, '127.0.0.1');
  clients.push(socket);
  socket.on('error', () => undefined); // a reset after the server's destroy
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(request);
  const client: RawClient = {
    socket,
    text: () => Buffer.concat(chunks).toString('latin1'),
    received: () => chunks.reduce((n, c) => n + c.length, 0),
    ended,
  };
  return { client, ...(await served) };
}

/** The body after the head (the client's view). */
function bodyOf(text: string): string {
  return text.slice(text.indexOf('\r\n\r\n') + 4);
}

/** After this tick's flush and the wake-up it arranged. */
const nextTurn = () => new Promise((r) => setImmediate(() => setImmediate(r)));

const body = (name: string, n: number) => eventBody(name, JSON.stringify({ n }));

/** Fills the socket: a frame far larger than the kernel's buffers, while the client reads nothing. */
function backUp(conn: SseConnection, client: RawClient, id = '1-0'): number {
  client.socket.pause();
  return conn.deliver(false, id, 'e', eventBody('big', 'x'.repeat(32 << 20)));
}

describe('SseConnection on the SSE writer', () => {
  it('writes a close-delimited head and exactly the SSE frames, then ends the connection', async () => {
    const { client, conn } = await connect();
    conn.open(body('welcome', 0));
    conn.deliver(false, '1-0', 'e', body('r', 1));
    conn.deliver(true, '2-0', 'e', Buffer.from(body('b', 2)));
    conn.end();
    await client.ended;
    const text = client.text();
    const head = text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toMatch(/^http\/1\.1 200 ok\r\n/);
    expect(head).toContain('content-type: text/event-stream');
    expect(head).toContain('connection: close');
    expect(head).not.toContain('transfer-encoding');
    expect(head).not.toContain('content-length');
    // No chunk sizes, no closing chunk: the frames are the body, and the last one is not lost.
    expect(bodyOf(text)).toBe(
      `id: ${CID}_0-0_0-0\n${body('welcome', 0)}` +
        `id: ${CID}_1-0_0-0\n${body('r', 1)}` +
        `id: ${CID}_1-0_2-0\n${body('b', 2)}`,
    );
  });

  it('lets the HTTP layer go after the head: no parser, no server listeners, no response', async () => {
    const { client, conn, res, socket } = await connect();
    const serverListeners = (name: string) => socket.listeners(name).length;
    expect((socket as Socket & { parser?: unknown }).parser).toBeTruthy();
    conn.open(body('welcome', 0));
    await nextTurn(); // let go of on the next turn, not from within the parser's run
    expect((socket as Socket & { parser?: unknown }).parser).toBeNull();
    expect((socket as Socket & { _httpMessage?: unknown })._httpMessage).toBeNull();
    expect(res.socket).toBeNull();
    expect(Reflect.get(conn, 'res')).toBeNull();
    for (const name of ['data', 'timeout', 'drain', 'pause', 'resume']) {
      expect(serverListeners(name)).toBe(0);
    }
    // Ours alone: close, error, end (and net's own end listener).
    expect(serverListeners('close')).toBe(1);
    expect(serverListeners('error')).toBe(1);
    // The connection still notices its client leaving.
    client.socket.destroy();
    await waitFor(() => gone.length > 0, 5000, 'client gone noticed');
    expect(gone).toHaveLength(1);
    expect(conn.deliver(false, '1-0', 'e', body('r', 1))).toBe(SKIPPED);
  });

  it('answers a HEAD with the head alone and reports the stream gone', async () => {
    const { client, conn } = await connect('HEAD /mcp/sse HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(conn.open(body('welcome', 0))).toBe(SKIPPED);
    await waitFor(() => gone.length > 0, 5000, 'HEAD stream reported gone');
    client.socket.destroy();
    expect(client.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(bodyOf(client.text())).toBe('');
  });

  it('holds events that arrive while opening and writes them after the welcome, deduplicated', async () => {
    const { client, conn } = await connect();
    expect(conn.deliver(false, '5-0', 'e', body('mcp-response', 1))).toBe(SKIPPED);
    expect(conn.deliver(true, '7-0', 'e', Buffer.from(body('b', 1)))).toBe(SKIPPED);
    expect(conn.deliver(true, '9-0', 'e', Buffer.from(body('b', 2)))).toBe(SKIPPED);
    conn.startTypeTopicAt('7-0'); // the broadcast 7-0 came before the connection's start
    conn.open(body('mcp-notification', 0));
    conn.end();
    await client.ended;
    expect(bodyOf(client.text())).toBe(
      `id: ${CID}_0-0_7-0\n${body('mcp-notification', 0)}` +
        `id: ${CID}_5-0_7-0\n${body('mcp-response', 1)}` +
        `id: ${CID}_5-0_9-0\n${body('b', 2)}`,
    );
  });

  it('drops events at or before the cursor of their topic', async () => {
    const { client, conn } = await connect();
    conn.open(body('w', 0));
    expect(conn.deliver(false, '2-0', 'e', body('r', 1))).toBeGreaterThan(0);
    expect(conn.deliver(false, '2-0', 'e', body('r', 1))).toBe(SKIPPED);
    expect(conn.deliver(false, '1-9', 'e', body('r', 0))).toBe(SKIPPED);
    expect(conn.deliver(true, '1-0', 'e', Buffer.from(body('b', 1)))).toBeGreaterThan(0);
    expect(conn.deliver(true, '1-0', 'e', Buffer.from(body('b', 1)))).toBe(SKIPPED);
    expect(conn.eventId).toBe(`${CID}_2-0_1-0`);
    conn.end();
    await client.ended;
    expect(bodyOf(client.text()).match(/^id: /gm)).toHaveLength(3);
  });

  it('sends the frames of one tick as one socket write', async () => {
    const { client, conn, socket } = await connect();
    conn.open(body('w', 0));
    await nextTurn();
    const writev = jest.spyOn(socket as unknown as { _writev: () => void }, '_writev');
    const write = jest.spyOn(socket as unknown as { _write: () => void }, '_write');
    for (let i = 1; i <= 5; i++) conn.deliver(true, `${i}-0`, 'e', Buffer.from(body('b', i)));
    await nextTurn();
    // Gathered by the writer: one plain write of one chunk (no cork, no writev).
    expect(writev).not.toHaveBeenCalled();
    expect(write).toHaveBeenCalledTimes(1);
    expect(String((write.mock.calls[0] as unknown[])[0]).match(/^id: /gm)).toHaveLength(5);
    conn.end();
    await client.ended;
  });

  it('flushes a fan-out in slices with a turn between them; a writer waiting keeps gathering, in order', async () => {
    setFlushSlice(2);
    const streams = [await connect(), await connect(), await connect()];
    for (const { conn } of streams) conn.open(body('w', 0));
    await nextTurn();
    const writes = streams.map(({ socket }) =>
      jest.spyOn(socket as unknown as { _write: () => void }, '_write'),
    );
    for (const { conn } of streams) conn.deliver(true, '1-0', 'e', Buffer.from(body('b', 1)));
    await new Promise((resolve) => process.nextTick(resolve)); // after the first slice
    expect(writes.map((w) => w.mock.calls.length)).toEqual([1, 1, 0]);
    // The third waits for the next turn; what it gets meanwhile joins its write, in order.
    streams[2].conn.deliver(true, '2-0', 'e', Buffer.from(body('b', 2)));
    await nextTurn();
    expect(writes.map((w) => w.mock.calls.length)).toEqual([1, 1, 1]);
    const third = String((writes[2].mock.calls[0] as unknown[])[0]);
    expect(third.match(/^id: .*$/gm)).toHaveLength(2);
    expect(third.indexOf('"n":1')).toBeLessThan(third.indexOf('"n":2'));
    for (const { conn, client } of streams) {
      conn.end();
      await client.ended;
    }
  });

  it('gathers string and shared Buffer frames with multi-byte text into one intact write', async () => {
    const { client, conn, socket } = await connect();
    conn.open(body('w', 0));
    await nextTurn();
    const write = jest.spyOn(socket as unknown as { _write: () => void }, '_write');
    conn.deliver(false, '1-0', 'e', eventBody('r', JSON.stringify({ text: 'é€😀' })));
    conn.deliver(true, '1-0', 'e', Buffer.from(eventBody('b', JSON.stringify({ text: 'ü✓' }))));
    conn.deliver(false, '2-0', 'e', body('r', 2));
    await nextTurn();
    expect(write).toHaveBeenCalledTimes(1);
    conn.end();
    await client.ended;
    expect(bodyOf(Buffer.from(client.text(), 'latin1').toString('utf8'))).toBe(
      `id: ${CID}_0-0_0-0\n${body('w', 0)}` +
        `id: ${CID}_1-0_0-0\n${eventBody('r', JSON.stringify({ text: 'é€😀' }))}` +
        `id: ${CID}_1-0_1-0\n${eventBody('b', JSON.stringify({ text: 'ü✓' }))}` +
        `id: ${CID}_2-0_1-0\n${body('r', 2)}`,
    );
  });

  it('SSE_BATCH_MS: coalesces the frames of several ticks within the window into one write', async () => {
    const { client, conn, socket } = await connect();
    conn.open(body('w', 0));
    await nextTurn();
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    setSseBatchWindow(25);
    const writev = jest.spyOn(socket as unknown as { _writev: () => void }, '_writev');
    const write = jest.spyOn(socket as unknown as { _write: () => void }, '_write');
    const before = client.received();
    conn.deliver(true, '1-0', 'e', Buffer.from(body('b', 1)));
    await nextTurn();
    conn.deliver(true, '2-0', 'e', Buffer.from(body('b', 2)));
    await nextTurn();
    expect(writev).not.toHaveBeenCalled();
    expect(write).not.toHaveBeenCalled();
    jest.advanceTimersByTime(25);
    expect(writev).not.toHaveBeenCalled();
    expect(write).toHaveBeenCalledTimes(1);
    expect(String((write.mock.calls[0] as unknown[])[0]).match(/^id: /gm)).toHaveLength(2);
    jest.useRealTimers();
    await waitFor(() => client.text().includes('"n":2'), 5000, 'batch to arrive');
    expect(client.received()).toBeGreaterThan(before);
    conn.end();
    await client.ended;
  });

  it('SSE_BATCH_MS 0: each tick is its own write', async () => {
    const { client, conn, socket } = await connect();
    conn.open(body('w', 0));
    await nextTurn();
    const writev = jest.spyOn(socket as unknown as { _writev: () => void }, '_writev');
    const write = jest.spyOn(socket as unknown as { _write: () => void }, '_write');
    conn.deliver(true, '1-0', 'e', Buffer.from(body('b', 1)));
    await nextTurn();
    conn.deliver(true, '2-0', 'e', Buffer.from(body('b', 2)));
    await nextTurn();
    expect(writev.mock.calls.length + write.mock.calls.length).toBe(2);
    conn.end();
    await client.ended;
  });

  it('queues behind a slow client, skips heartbeats, and writes the queue in order once it reads', async () => {
    const { client, conn } = await connect();
    conn.open(body('w', 0));
    expect(backUp(conn, client)).toBeGreaterThan(0);
    await nextTurn();
    expect(conn.isBlocked).toBe(true);
    expect(conn.deliver(false, '2-0', 'e', body('r', 2))).toBeGreaterThan(0);
    expect(conn.deliver(true, '3-0', 'e', Buffer.from(body('b', 3)))).toBeGreaterThan(0);
    expect(conn.sendLocal(body('heartbeat', 0), true)).toBe(SKIPPED);
    const drained = conn.drained();
    client.socket.resume();
    await drained;
    const tail = `id: ${CID}_2-0_0-0\n${body('r', 2)}id: ${CID}_2-0_3-0\n${body('b', 3)}`;
    await waitFor(() => client.text().endsWith(tail), 10_000, 'queued frames to arrive');
    expect(conn.sendLocal(body('heartbeat', 0), true)).toBeGreaterThan(0);
    conn.end();
    await client.ended;
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

    limits = { maxBytes: 1 << 20, maxEvents: 4 };
    const { client, conn } = await connect();
    conn.open(body('w', 0));
    backUp(conn, client);
    await nextTurn();
    // The hub names the request of each tool-progress event (its own kind on the engine).
    conn.deliver(false, '2-0', 'e', progress('a', 1), 'a');
    conn.deliver(false, '3-0', 'e', progress('b', 1), 'b');
    conn.deliver(false, '4-0', 'e', result('b'));
    conn.deliver(false, '5-0', 'e', progress('a', 2), 'a');
    for (let i = 3; i <= 9; i++)
      expect(conn.deliver(false, `6-${i}`, 'e', progress('a', i), 'a')).toBeGreaterThan(0);
    expect(conn.deliver(false, '7-0', 'e', result('a'))).toBeGreaterThan(0);
    client.socket.resume();
    await waitFor(() => client.text().includes('7-0'), 10_000, 'queued frames to arrive');
    const wire = bodyOf(client.text()).slice(32 << 20);
    const ids = [...wire.matchAll(/^id: [^_]+_([^_]+)_/gm)].map((m) => m[1]);
    expect(ids).toEqual(['3-0', '4-0', '6-9', '7-0']);
    expect(wire).toContain('"progress":9');
    expect(wire).not.toContain('"progress":2,');
    conn.end();
    await client.ended;
  });

  it('reports OVERFLOW past the event bound of a slow client', async () => {
    limits = { maxBytes: 1 << 20, maxEvents: 3 };
    const { client, conn } = await connect();
    conn.open(body('w', 0));
    backUp(conn, client);
    await nextTurn();
    for (let i = 1; i <= 3; i++)
      expect(conn.deliver(false, `${i + 1}-0`, 'e', body('r', i))).toBeGreaterThan(0);
    expect(conn.deliver(false, '9-0', 'e', body('r', 9))).toBe(OVERFLOW);
    // The hub then drops the connection: the client sees its socket close.
    conn.destroy();
    client.socket.resume();
    await client.ended;
  });

  it('reports OVERFLOW past the byte bound of a slow client', async () => {
    limits = { maxBytes: 200, maxEvents: 100 };
    const { client, conn } = await connect();
    conn.open(body('w', 0));
    backUp(conn, client);
    await nextTurn();
    expect(conn.deliver(false, '2-0', 'e', eventBody('r', 'x'.repeat(100)))).toBeGreaterThan(0);
    expect(conn.deliver(false, '3-0', 'e', eventBody('r', 'x'.repeat(100)))).toBe(OVERFLOW);
    conn.destroy();
    client.socket.resume();
    await client.ended;
  });

  it('is stuck when still backed up at two sweeps in a row, not when it drained between', async () => {
    const { client, conn } = await connect();
    conn.open(body('w', 0));
    expect(conn.isStuck()).toBe(false);
    backUp(conn, client);
    await nextTurn();
    expect(conn.isStuck()).toBe(false); // first sweep that sees it blocked
    const drained = conn.drained();
    client.socket.resume();
    await drained;
    expect(conn.isStuck()).toBe(false);
    backUp(conn, client, '2-0');
    await nextTurn();
    expect(conn.isStuck()).toBe(false);
    expect(conn.isStuck()).toBe(true);
    conn.destroy();
    client.socket.resume();
    await client.ended;
  });

  it('ends after what waited behind a backup: the last events are not lost', async () => {
    const { client, conn } = await connect();
    conn.open(body('w', 0));
    backUp(conn, client);
    await nextTurn();
    expect(conn.deliver(false, '2-0', 'e', body('r', 2))).toBeGreaterThan(0);
    conn.end();
    client.socket.resume();
    await client.ended;
    expect(client.text().endsWith(`id: ${CID}_2-0_0-0\n${body('r', 2)}`)).toBe(true);
  });

  it('writes nothing once ended', async () => {
    const { client, conn } = await connect();
    conn.open(body('w', 0));
    conn.end();
    expect(conn.deliver(false, '1-0', 'e', body('r', 1))).toBe(SKIPPED);
    expect(conn.sendLocal(body('s', 1), false)).toBe(SKIPPED);
    await client.ended;
    expect(bodyOf(client.text())).toBe(`id: ${CID}_0-0_0-0\n${body('w', 0)}`);
    expect(gone).toEqual([]); // our own end is not a client leaving
  });
});
