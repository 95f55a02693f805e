/** Scenario 3: tools/call through Redis and one worker (calls per second, CPU per call). */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Histogram, round } from './histogram';
import { issueToken, sleep, spawnRedis, spawnRole } from './procs';
import { openSseStream, postJson } from './sseStream';
import type { ScenarioResult } from './comparison';

import { settings, now, log, serverEnv, profileArgs, sampleCpu, cpuDelta } from './common';

export async function benchToolsCall(secret: string) {
  const redis = await spawnRedis('redis (tools/call)');
  const env = serverEnv(redis.url, secret);
  const [gateway, worker] = await Promise.all([
    spawnRole(
      'gateway',
      'gateway',
      { ...env, POD_ID: 'bench-gateway' },
      profileArgs('tools-gateway'),
    ),
    spawnRole('worker', 'worker', { ...env, POD_ID: 'bench-worker' }, profileArgs('tools-worker')),
  ]);
  log(
    `gateway pid ${gateway.proc.pid}, worker pid ${worker.proc.pid}, redis-server pid ${redis.proc.pid}`,
  );
  const token = issueToken(secret, 'team', 'bench-caller');
  const agent = new http.Agent({ keepAlive: true, maxSockets: settings.concurrency });

  interface Outcome {
    ok: boolean;
    at: number;
  }
  const waiting = new Map<string, (o: Outcome) => void>();
  const early = new Map<string, Outcome>();
  const stream = await openSseStream(gateway.url, token, (event, data) => {
    if (event !== 'tool-result' && event !== 'mcp-error') return;
    const parsed = JSON.parse(data) as {
      requestId: string;
      metadata?: unknown;
      result?: { isError?: boolean };
    };
    if (event === 'tool-result' && parsed.metadata !== undefined) return; // progress
    const outcome = { ok: event === 'tool-result' && !parsed.result?.isError, at: now() };
    const wake = waiting.get(parsed.requestId);
    if (wake) {
      waiting.delete(parsed.requestId);
      wake(outcome);
    } else early.set(parsed.requestId, outcome);
  });

  const errors: string[] = [];
  let failedCalls = 0;
  const call = async (
    name: string,
    args: Record<string, unknown>,
    latency?: Histogram,
  ): Promise<void> => {
    const started = now();
    const { status, body } = await postJson(agent, `${gateway.url}/mcp/sse/send`, token, {
      connectionId: stream.connectionId,
      message: { method: 'tools/call', params: { name, arguments: args } },
    });
    if (status !== 202 || typeof body.requestId !== 'string') {
      failedCalls++;
      if (errors.length < 5) errors.push(`HTTP ${status} ${JSON.stringify(body)}`);
      return;
    }
    const requestId = body.requestId;
    let outcome = early.get(requestId);
    early.delete(requestId);
    outcome ??= await new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(requestId);
        resolve({ ok: false, at: NaN });
      }, 30_000);
      waiting.set(requestId, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
    });
    if (!outcome.ok) {
      failedCalls++;
      if (errors.length < 5) {
        errors.push(Number.isNaN(outcome.at) ? `no result for ${requestId}` : `${name} failed`);
      }
    } else latency?.record(outcome.at - started);
  };
  const runCalls = async (count: number, latency?: Histogram) => {
    let next = 0;
    const lane = async () => {
      while (next < count) {
        next++;
        await call('list_projects', {}, latency);
      }
    };
    await Promise.all(Array.from({ length: Math.min(settings.concurrency, count) }, lane));
  };

  // A few projects for list_projects to list, and a warm-up (not measured).
  for (let i = 1; i <= 3; i++) await call('create_project', { name: `Bench project ${i}` });
  await runCalls(settings.warmupCalls);
  const seedFailures = failedCalls;
  failedCalls = 0;
  await sleep(300);

  log(`${settings.calls} tools/call list_projects, ${settings.concurrency} in flight`);
  const procs = { gateway: gateway.proc, worker: worker.proc, redis: redis.proc };
  const cpuBefore = sampleCpu(procs);
  const clientBefore = process.cpuUsage();
  const latency = new Histogram();
  const started = performance.now();
  await runCalls(settings.calls, latency);
  const seconds = (performance.now() - started) / 1000;
  const cpu = cpuDelta(cpuBefore, sampleCpu(procs));
  const client = process.cpuUsage(clientBefore);

  stream.close();
  agent.destroy();
  await Promise.all([gateway.proc.stop('SIGTERM', 10_000), worker.proc.stop('SIGTERM', 10_000)]);
  await redis.proc.stop('SIGTERM', 5000);

  const serverCpu = cpu.gateway.total + cpu.worker.total + cpu.redis.total;
  const calls = settings.calls;
  return {
    calls,
    concurrency: settings.concurrency,
    tool: 'list_projects (3 projects in the store)',
    failed: failedCalls,
    warmupFailed: seedFailures,
    errors,
    wallSeconds: round(seconds, 3),
    callsPerSecond: round(calls / seconds, 0),
    cpuMicros: { ...cpu, client: client.user + client.system },
    cpuMicrosPerCall: round(serverCpu / calls, 1),
    cpuMicrosPerCallByProcess: {
      gateway: round(cpu.gateway.total / calls, 1),
      worker: round(cpu.worker.total / calls, 1),
      redis: round(cpu.redis.total / calls, 1),
    },
    callsPerCpuSecond: serverCpu > 0 ? round((calls * 1e6) / serverCpu, 0) : null,
    latencyMs: latency.summary(),
  };
}

/** The tools/call scenario as `make bench` lists it: figures under the table, no peer row. */
export async function toolsCallScenario(secret: string): Promise<ScenarioResult> {
  const t = await benchToolsCall(secret);
  return {
    name: 'toolsCall',
    rows: [],
    lines: [
      `tools/call via /mcp/sse/send (1 gateway, 1 worker, Redis; ${t.concurrency} in flight): ` +
        `${t.callsPerSecond} calls/s, ${t.cpuMicrosPerCall} µs CPU/call (gateway ` +
        `${t.cpuMicrosPerCallByProcess.gateway}, worker ${t.cpuMicrosPerCallByProcess.worker}, ` +
        `redis ${t.cpuMicrosPerCallByProcess.redis}), p50 ${t.latencyMs.p50Ms} / p99 ` +
        `${t.latencyMs.p99Ms} ms, ${t.failed} failed`,
    ],
    details: t,
    broken: t.failed > 0 ? [`${t.failed} tools/call failed: ${t.errors[0] ?? ''}`] : [],
  };
}
