/**
 * Issue 6, logs: the requestId a client gets in the 202 of POST /mcp/sse/send shows in the
 * gateway's line for the accepted command and in the worker's lines for running it; no line
 * ever holds a token (JWT), not even from a request that carried one in its query string.
 */
import { MemoryEngine } from '../../shared/engine/memory';
import type { Logger } from '../../shared/logger';
import { createMetrics } from '../../shared/metrics';
import { createWorker, type Worker } from '../../worker/worker';
import { captureLogs } from '../helpers/logs';
import { startGateway, type GatewayHarness } from '../helpers/gatewayHarness';
import { callTool, openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';
import { topics } from '../../shared/protocol';
import { ZERO_EVENT_ID } from '../../shared/engine/eventId';
import { envelope, testConfig } from './worker/harness';

/** A JWT anywhere in a line: header and payload are base64url JSON objects ("eyJ..."). */
const JWT = /eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/;

interface Line {
  role: string;
  message: string;
  level: string;
  requestId?: string;
  connectionId?: string;
  [key: string]: unknown;
}

const raw: string[] = [];

/** A debug-level JSON logger like the real one, writing into `raw`. */
function capturingLogger(role: string): Logger {
  return captureLogs({ level: 'debug', defaultMeta: { role }, into: raw }).logger;
}

const lines = (): Line[] => raw.map((l) => JSON.parse(l) as Line);

let engine: MemoryEngine;
let gw: GatewayHarness;
let worker: Worker;
let client: SseClient;

beforeAll(async () => {
  engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
  await engine.start();
  gw = await startGateway({
    engine,
    logger: capturingLogger('gateway'),
    env: { LOG_LEVEL: 'debug' },
  });
  worker = createWorker({
    config: testConfig({ LOG_LEVEL: 'debug' }),
    engine,
    logger: capturingLogger('worker'),
    metrics: createMetrics('worker'),
  });
  await worker.start();
  client = await openSseClient(gw.url, gw.tokens.team);
});

afterAll(async () => {
  client?.close();
  await worker?.stop();
  await gw?.close();
  await engine?.close();
});

test('a command is followed by its requestId from the gateway through the worker', async () => {
  const result = await callTool(gw.url, gw.tokens.team, client, 'list_projects');
  expect(result.event).toBe('tool-result');
  const requestId = result.json.requestId as string;
  await waitFor(
    () => lines().some((l) => l.requestId === requestId && l.message === 'command finished'),
    5000,
    'worker finish line',
  );
  const mine = lines().filter((l) => l.requestId === requestId);
  const gateway = mine.filter((l) => l.role === 'gateway');
  const workerLines = mine.filter((l) => l.role === 'worker');
  expect(gateway).toEqual([
    expect.objectContaining({
      message: 'command accepted',
      level: 'debug',
      connectionId: client.connectionId,
      method: 'tools/call',
      tokenType: 'team',
    }),
  ]);
  expect(workerLines.map((l) => l.message)).toEqual(['command started', 'command finished']);
  for (const l of workerLines) expect(l.connectionId).toBe(client.connectionId);
  expect(workerLines[1]).toMatchObject({ outcome: 'ok', method: 'tools/call' });
});

test('a tool error is a result, logged with its outcome and requestId', async () => {
  const { status, body } = await sendCommand(gw.url, gw.tokens.readonly, client.connectionId, {
    method: 'tools/list',
  });
  // Another token's connection: refused, and nothing about it leaks a token into the logs.
  expect(status).toBe(403);
  expect(body.requestId).toBeUndefined();
  const failed = await callTool(gw.url, gw.tokens.team, client, 'no_such_tool');
  expect(failed.event).toBe('mcp-error');
  await waitFor(
    () => lines().some((l) => l.requestId === failed.json.requestId && l.outcome === 'error'),
    5000,
    'worker error outcome line',
  );
});

test('no line ever holds a token, even one sent in a query string', async () => {
  await fetch(`${gw.url}/nothing-here?token=${gw.tokens.master}`);
  await fetch(`${gw.url}/mcp/sse/stats?token=${gw.tokens.master}`);
  await fetch(`${gw.url}/mcp/sse/send`, {
    method: 'POST',
    headers: { Authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', 'X-T': 'x' },
  });
  // Lines are written synchronously, but let the request logging of the last one finish.
  await waitFor(() => lines().some((l) => l.path === '/mcp/sse/send'), 2000, 'request line');
  expect(raw.length).toBeGreaterThan(5);
  const tokens = Object.values(gw.tokens);
  const leaking = raw.filter((l) => JWT.test(l) || tokens.some((t) => l.includes(t)));
  expect(leaking).toEqual([]);
});

describe('issue 9 item 11: logged fields are bounded at every level', () => {
  const HUGE = 900 * 1024;
  /** A line carrying one 900 KB field stays under this (2 KB per field, plus the rest). */
  const LINE_BOUND = 8 * 1024;

  test('a 900 KB field, string or object, is cut and says how long it was', () => {
    const captured = captureLogs({ level: 'debug' });
    const method = 'm'.repeat(HUGE);
    captured.logger.debug('command started', { method, params: { list: [method] } });
    captured.logger.error(method);
    expect(captured.lines).toHaveLength(2);
    for (const line of captured.lines) expect(line.length).toBeLessThan(LINE_BOUND);
    const [debug, error] = captured.records();
    expect(debug.method).toMatch(/^m+… \(truncated: 921600 characters\)$/);
    expect(String(debug.params)).toContain('(truncated: 921'); // the object's JSON, cut
    expect(error.message).toMatch(/… \(truncated: 921600 characters\)$/);
    // Short fields pass untouched.
    captured.logger.info('short', { n: 1, o: { a: 'b' } });
    expect(captured.records()[2]).toMatchObject({ message: 'short', n: 1, o: { a: 'b' } });
  });

  test('a command with a 900 KB method: every line of it stays small, and so does its mcp-error', async () => {
    const before = raw.length;
    const command = envelope(client.connectionId, { method: 'x'.repeat(HUGE) });
    await engine.enqueueCommand(command);
    await waitFor(
      () =>
        lines().some((l) => l.requestId === command.requestId && l.message === 'command finished'),
      5000,
      'worker finish line',
    );
    const mine = raw.slice(before).filter((l) => l.includes(command.requestId));
    expect(mine.length).toBeGreaterThanOrEqual(2);
    for (const line of mine) expect(line.length).toBeLessThan(LINE_BOUND);
    // The method is echoed bounded in the error event too (issue 9 item 1).
    const page = await engine.readHistory(
      topics.connection(client.connectionId),
      ZERO_EVENT_ID,
      1000,
    );
    const event = page.events.find((e) => e.data.includes(command.requestId));
    expect(event?.event).toBe('mcp-error');
    expect(event!.data.length).toBeLessThan(2048);
    const data = JSON.parse(event!.data);
    expect(data.method).toMatch(/^x{100}… \(921600 characters\)$/);
    expect(data.error.message).toMatch(/^Method not found: x{100}… \(921600 characters\)$/);
  });
});
