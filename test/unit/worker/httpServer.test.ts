import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MemoryEngine } from '../../../shared/engine/memory';
import { createMetrics } from '../../../shared/metrics';
import { createWorkerHttpApp } from '../../../worker/httpServer';

describe('worker HTTP app', () => {
  let engine: MemoryEngine;
  let stopping: boolean;
  let server: http.Server;
  let base: string;

  beforeEach(async () => {
    engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
    stopping = false;
    const metrics = createMetrics('worker');
    metrics.commandsCompleted.inc({ outcome: 'ok' });
    const app = createWorkerHttpApp({ engine, metrics, worker: { isStopping: () => stopping } });
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await engine.close();
  });

  it('GET /health is always 200', async () => {
    const res = await fetch(`${base}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('GET /ready is 503 until the engine is up, 200 then, 503 again once stopping', async () => {
    const before = await fetch(`${base}/ready`);
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({
      error: { code: 'unavailable', message: 'Engine is not ready' },
    });
    expect(before.headers.get('retry-after')).toBe('1');

    await engine.start();
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });

    stopping = true;
    const draining = await fetch(`${base}/ready`);
    expect(draining.status).toBe(503);
    expect(((await draining.json()) as { error: { message: string } }).error.message).toBe(
      'Worker is stopping',
    );
  });

  it('GET /metrics serves the Prometheus registry', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const body = await res.text();
    expect(body).toMatch(/mcpgw_commands_completed_total\{outcome="ok",role="worker"\} 1/);
    expect(body).toContain('mcpgw_command_duration_seconds_bucket');
  });

  it('anything else is a JSON 404', async () => {
    const res = await fetch(`${base}/mcp/sse`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });
});
