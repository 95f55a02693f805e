/**
 * Gauges read on scrape: mcpgw_ready (what /ready answers) on gateways and workers, and
 * mcpgw_command_queue (the engine's command backlog) on workers.
 */
import { MemoryEngine } from '../../shared/engine/memory';
import { silentLogger } from '../../shared/logger';
import { createMetrics, type Metrics } from '../../shared/metrics';
import { createWorker } from '../../worker/worker';
import { startGateway } from '../helpers/gatewayHarness';
import { envelope, testConfig } from './worker/harness';

async function values(metrics: Metrics, name: string): Promise<Record<string, number>> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values: series } = await metric.get();
  return Object.fromEntries(
    series.map((v) => [String(v.labels.state ?? v.labels.role ?? ''), v.value]),
  );
}

test('mcpgw_ready is 0 until a role registers, 1 while ready, 0 once it closes', async () => {
  const bare = createMetrics('gateway');
  expect(await values(bare, 'mcpgw_ready')).toEqual({ '': 0 });

  const gw = await startGateway();
  try {
    expect(await values(gw.metrics, 'mcpgw_ready')).toEqual({ '': 1 });
    const text = await gw.metrics.registry.metrics();
    expect(text).toMatch(/^mcpgw_ready\{role="gateway"\} 1$/m);
    await gw.gateway.close();
    expect(await values(gw.metrics, 'mcpgw_ready')).toEqual({ '': 0 });
  } finally {
    await gw.close();
  }
});

test('a worker reports mcpgw_ready and the command backlog, and stops both on stop()', async () => {
  const engine = new MemoryEngine({ historyMaxLen: 100, historyTtlS: 60 });
  await engine.start();
  const metrics = createMetrics('worker');
  const worker = createWorker({ config: testConfig(), engine, logger: silentLogger(), metrics });
  try {
    // Not started: nothing consumes, so what is enqueued waits.
    await engine.enqueueCommand(envelope('conn-1', { method: 'tools/list' }));
    await engine.enqueueCommand(envelope('conn-1', { method: 'tools/list' }));
    expect(await values(metrics, 'mcpgw_command_queue')).toEqual({
      waiting: 2,
      pending: 0,
      dead_lettered: 0,
    });
    expect(await values(metrics, 'mcpgw_ready')).toEqual({ '': 1 });
    expect(await metrics.registry.metrics()).toMatch(
      /^mcpgw_command_queue\{state="waiting",role="worker"\} 2$/m,
    );

    await worker.stop();
    expect(await values(metrics, 'mcpgw_ready')).toEqual({ '': 0 });
    expect(await values(metrics, 'mcpgw_command_queue')).toEqual({});
  } finally {
    await worker.stop();
    await engine.close();
  }
});

test('a failing backlog source drops the queue series instead of failing the scrape', async () => {
  const metrics = createMetrics('worker');
  metrics.setCommandBacklogSource(async () => ({ waiting: 5, pending: 1, deadLettered: 0 }));
  expect((await values(metrics, 'mcpgw_command_queue')).waiting).toBe(5);
  metrics.setCommandBacklogSource(() => Promise.reject(new Error('redis down')));
  expect(await values(metrics, 'mcpgw_command_queue')).toEqual({});
  await expect(metrics.registry.metrics()).resolves.toContain('mcpgw_ready');
});
