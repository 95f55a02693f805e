import express from 'express';
import type http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { waitFor } from '../../../devSupport/waitFor';
import { McpSseStream } from '../../../gateway/mcpTransports/stream';
import { createMetrics } from '../../../shared/metrics';

/**
 * The MCP transports' streams on the SSE writer, over real sockets: a session stream's body is
 * delimited by the connection's close; a request stream is chunked and its connection reused.
 */
let server: http.Server;
let port: number;
let streams: McpSseStream[] = [];
const clients: Socket[] = [];
const metrics = createMetrics('gateway');

beforeAll(async () => {
  const app = express();
  app.get('/session', (req, res) => {
    const stream = new McpSseStream(req, res, 'session', 1 << 20);
    streams.push(stream);
    stream.open(metrics, { 'Mcp-Session-Id': 's1' });
  });
  app.get('/request', (req, res) => {
    const stream = new McpSseStream(req, res, 'request');
    streams.push(stream);
    stream.open(metrics);
  });
  app.get('/ping', (_req, res) => {
    res.type('text/plain').send('pong');
  });
  await new Promise<void>((resolve) => {
    server = app.listen(0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const socket of clients) socket.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

afterEach(() => {
  streams = [];
});

function rawClient() {
  const socket = net.connect(port, '127.0.0.1');
  clients.push(socket);
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, ended, text: () => Buffer.concat(chunks).toString('latin1') };
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

describe('McpSseStream on the SSE writer', () => {
  it('writes a session stream close-delimited: exactly the SSE frames, then the connection ends', async () => {
    const client = rawClient();
    client.socket.write(get('/session'));
    await waitFor(() => streams.length === 1, 5000, 'stream opened');
    const [stream] = streams;
    const closed: string[] = [];
    stream.onClose(() => closed.push('closed'));
    stream.event('s_1', 'message', '{"a":1}');
    stream.comment('keep-alive');
    stream.end();
    await client.ended;
    const text = client.text();
    const head = text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toContain('connection: close');
    expect(head).toContain('mcp-session-id: s1');
    expect(head).not.toContain('transfer-encoding');
    expect(text.slice(text.indexOf('\r\n\r\n') + 4)).toBe(
      'retry: 2000\n\nid: s_1\nevent: message\ndata: {"a":1}\n\n: keep-alive\n\n',
    );
    expect(stream.closed).toBe(true);
    expect(closed).toEqual(['closed']);
  });

  it('writes a request stream as chunks and leaves the connection to the next request', async () => {
    const client = rawClient();
    client.socket.write(get('/request'));
    await waitFor(() => streams.length === 1, 5000, 'stream opened');
    const [stream] = streams;
    stream.event('r_1', 'message', '{"result":1}');
    stream.end();
    await waitFor(() => client.text().endsWith('0\r\n\r\n'), 5000, 'closing chunk');
    const text = client.text();
    expect(text.toLowerCase()).toContain('transfer-encoding: chunked');
    const frame = 'id: r_1\nevent: message\ndata: {"result":1}\n\n';
    expect(text.slice(text.indexOf('\r\n\r\n') + 4)).toBe(
      `d\r\nretry: 2000\n\n\r\n${frame.length.toString(16)}\r\n${frame}\r\n0\r\n\r\n`,
    );
    // The same connection serves the client's next request.
    client.socket.write(get('/ping'));
    await waitFor(() => client.text().endsWith('pong'), 5000, 'second response');
    expect(client.socket.destroyed).toBe(false);
  });

  it('cuts off a client that stops reading once its queue is over the bound', async () => {
    const client = rawClient();
    client.socket.write(get('/session'));
    await waitFor(() => streams.length === 1, 5000, 'stream opened');
    const [stream] = streams;
    client.socket.pause();
    stream.event('s_1', 'message', 'x'.repeat(32 << 20)); // far past the kernel's buffers
    await new Promise((r) => setImmediate(r));
    for (let i = 2; !stream.closed && i < 100; i++)
      stream.event(`s_${i}`, 'message', 'y'.repeat(64 << 10));
    expect(stream.closed).toBe(true);
    await stream.released();
    client.socket.resume();
    await client.ended;
  });
});
