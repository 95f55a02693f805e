/**
 * Issue 15, Sentinel: gateways and workers on a Sentinel group (one master, one replica, three
 * sentinels) while broadcasts and tool calls flow; the master is SIGKILLed and the sentinels
 * promote the replica. Every process must ride it out without a restart, /ready must say 503
 * during the gap and 200 after, by itself, and the streams must resume. The counts of what was
 * delivered, lost and flagged `history-lost` are printed (README, Cluster: Sentinel).
 */
import { issueToken } from '../../shared/auth';
import type { TokenType } from '../../shared/types';
import { reapAll, readyStatus, spawnRole, type SpawnedProcess } from '../helpers/processes';
import { histogram } from '../helpers/faultCounts';
import { openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';
import { uniquePrefix } from '../../devSupport/redis';
import { type SentinelGroup, startSentinelGroup } from '../../devSupport/sentinel';
import { waitFor } from '../../devSupport/waitFor';

const SECRET = 'sentinel-test-secret-0123456789abcdef';
const token = (type: TokenType, sub = `${type}-1`) => issueToken(SECRET, { type, sub, ttl: '1h' });
const tokens = { master: token('master'), team: token('team') };

let group: SentinelGroup;
let gateways: SpawnedProcess[] = [];
let workers: SpawnedProcess[] = [];
const clients: SseClient[] = [];

beforeAll(async () => {
  group = await startSentinelGroup();
  const env = {
    REDIS_SENTINELS: group.sentinelsEnv,
    REDIS_SENTINEL_MASTER: group.masterName,
    REDIS_PREFIX: uniquePrefix('sentinel'),
    JWT_SECRET: SECRET,
    HEARTBEAT_INTERVAL_MS: '1000',
    CLEANUP_INTERVAL_MS: '500',
    CLAIM_IDLE_MS: '1000',
    RESUME_GRACE_MS: '30000',
    MAX_INFLIGHT_PER_TOKEN: '1000',
    MAX_PROJECTS_PER_TOKEN: '1000',
  };
  [gateways, workers] = await Promise.all([
    Promise.all(['a', 'b'].map((l) => spawnRole('gateway', { ...env, POD_ID: `gateway-${l}` }))),
    Promise.all([1, 2].map((n) => spawnRole('worker', { ...env, POD_ID: `worker-${n}` }))),
  ]);
}, 60_000);

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await reapAll();
  await group?.stop();
});

async function broadcast(gateway: SpawnedProcess, seq: number): Promise<number> {
  try {
    const res = await fetch(`${gateway.url}/mcp/sse/broadcast`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${tokens.master}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: { type: 'tick', seq }, filter: { tokenTypes: ['team'] } }),
    });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}

test('a switchover (SENTINEL FAILOVER) moves every process to the new master, no restart', async () => {
  const [gatewayA, gatewayB] = gateways;
  const client = await openSseClient(gatewayA.url, tokens.team, { extraEvents: ['tick'] });
  clients.push(client);
  const oldPort = await group.masterPort();
  const newPort = await group.switchover();
  expect(newPort).not.toBe(oldPort);
  // The old master is a replica now: a process still writing to it would get READONLY. Each
  // must have moved (ioredis hears +switch-master from the sentinels).
  for (const p of [...gateways, ...workers]) {
    await waitFor(async () => (await readyStatus(p)) === 200, 20_000, `${p.role} ready`);
  }
  await waitFor(async () => (await broadcast(gatewayB, 0)) === 202, 20_000, 'broadcast accepted');
  await client.next((e) => e.event === 'tick' && e.json.seq === 0, 10_000);
  const { status, body } = await sendCommand(gatewayB.url, tokens.team, client.connectionId, {
    method: 'tools/call',
    params: { name: 'create_project', arguments: { name: 'after-switchover' } },
  });
  expect(status).toBe(202);
  const result = await client.next(
    (e) => e.json.requestId === body.requestId && ['tool-result', 'mcp-error'].includes(e.event),
    15_000,
  );
  expect(result.event).toBe('tool-result');
  for (const p of [...gateways, ...workers]) expect(p.child.exitCode).toBeNull();
  client.close();
}, 90_000);

test('a SIGKILLed master is replaced by its replica: every process rides it out, streams resume', async () => {
  const [gatewayA, gatewayB] = gateways;
  const onA = await openSseClient(gatewayA.url, tokens.team, { extraEvents: ['tick'] });
  const onB = await openSseClient(gatewayB.url, tokens.team, { extraEvents: ['tick'] });
  clients.push(onA, onB);

  // Traffic: a broadcast every 20 ms to alternating gateways, a tool call every 100 ms.
  const broadcasts = new Map<number, { status: number; phase: string }>();
  const calls: { status: number; requestId?: string; phase: string; errorCode?: string }[] = [];
  let phase = 'before';
  let running = true;
  const broadcastLoop = (async () => {
    for (let seq = 1; running; seq++) {
      const record = { status: -1, phase };
      broadcasts.set(seq, record);
      record.status = await broadcast(seq % 2 ? gatewayA : gatewayB, seq);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const callLoop = (async () => {
    for (let n = 1; running; n++) {
      const record: (typeof calls)[number] = { status: -1, phase };
      calls.push(record);
      try {
        const { status, body } = await sendCommand(
          (n % 2 ? gatewayB : gatewayA).url,
          tokens.team,
          onA.connectionId,
          {
            method: 'tools/call',
            params: { name: 'create_project', arguments: { name: `p${n}` } },
          },
        );
        record.status = status;
        record.requestId = body.requestId;
        record.errorCode = body.error?.code;
      } catch {
        record.status = 0;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const ticks = (client: SseClient) => new Set(client.named('tick').map((e) => e.json.seq));
  await waitFor(() => ticks(onA).size >= 20 && ticks(onB).size >= 20, 10_000, 'traffic flowing');

  const killedAt = Date.now();
  phase = 'during';
  const oldPort = await group.killMaster();
  const processes = [...gateways, ...workers];
  // Every gateway and worker says it is not ready while there is no master.
  const notReady = await Promise.all(
    processes.map((p) =>
      waitFor(async () => (await readyStatus(p)) === 503, 10_000, `${p.role} 503`).then(
        () => true,
        () => false,
      ),
    ),
  );
  const newPort = await group.waitForFailover(oldPort);
  for (const p of processes) {
    await waitFor(async () => (await readyStatus(p)) === 200, 20_000, `${p.role} ready again`);
  }
  const recoveredAt = Date.now();
  phase = 'after';
  const firstAfter = broadcasts.size + 1;
  await waitFor(
    () => [...ticks(onA)].filter((s) => Number(s) >= firstAfter).length >= 20,
    20_000,
    'broadcasts flowing after the failover',
  );
  running = false;
  await Promise.all([broadcastLoop, callLoop]);
  const accepted = [...broadcasts].filter(([, r]) => r.status === 202).map(([seq]) => seq);
  // Whatever is still in flight arrives or does not within this settle time.
  const lastAccepted = Math.max(...accepted);
  await waitFor(
    () => ticks(onA).has(lastAccepted) && ticks(onB).has(lastAccepted),
    10_000,
    'the last accepted broadcast',
  );

  // Tool calls accepted (202): each gets its result or an error event, or nothing.
  const acceptedCalls = calls.filter((c) => c.status === 202);
  const outcome = (requestId?: string) => {
    const events = onA.events.filter((e) => e.json.requestId === requestId);
    if (events.some((e) => e.event === 'tool-result' && e.json.metadata === undefined)) {
      return 'result';
    }
    return events.some((e) => e.event === 'mcp-error') ? 'error' : 'none';
  };
  await waitFor(
    () => acceptedCalls.every((c) => c.phase !== 'after' || outcome(c.requestId) !== 'none'),
    15_000,
    'every call accepted after the failover answered',
  );

  const lostOn = (client: SseClient) => accepted.filter((seq) => !ticks(client).has(seq));
  const historyLost = (client: SseClient) =>
    client.named('connection-status').filter((e) => e.json.status === 'history-lost').length;
  const count = (p: string, o: string) =>
    acceptedCalls.filter((c) => c.phase === p && outcome(c.requestId) === o).length;
  const report = {
    failover: { oldPort, newPort, gapMs: recoveredAt - killedAt, every503: notReady },
    broadcasts: {
      posted: broadcasts.size,
      accepted: accepted.length,
      statuses: histogram([...broadcasts.values()].map((r) => r.status)),
      lostOnA: lostOn(onA),
      lostOnB: lostOn(onB),
      historyLostOnA: historyLost(onA),
      historyLostOnB: historyLost(onB),
      historyLostMessages: [onA, onB].flatMap((c) =>
        c
          .named('connection-status')
          .filter((e) => e.json.status === 'history-lost')
          .map((e) => e.json.message),
      ),
    },
    toolCalls: Object.fromEntries(
      ['before', 'during', 'after'].map((p) => [
        p,
        {
          statuses: histogram(calls.filter((c) => c.phase === p).map((c) => c.status)),
          accepted: acceptedCalls.filter((c) => c.phase === p).length,
          result: count(p, 'result'),
          error: count(p, 'error'),
          none: count(p, 'none'),
        },
      ]),
    ),
  };
  console.log(`sentinel failover: ${JSON.stringify(report)}`);

  // Refused during the gap with 503 (the engine is unavailable), never anything else.
  expect(Object.keys(report.broadcasts.statuses).sort()).toEqual(
    Object.keys(report.broadcasts.statuses).length > 1 ? ['202', '503'] : ['202'],
  );
  for (const c of calls) expect([202, 503]).toContain(c.status);
  // Nobody restarted.
  for (const p of processes) expect(p.child.exitCode).toBeNull();
  expect(notReady).toEqual(processes.map(() => true));
  // The streams stayed open or resumed: both clients got broadcasts from after the failover.
  expect(ticks(onA).has(lastAccepted)).toBe(true);
  expect(ticks(onB).has(lastAccepted)).toBe(true);
  // Nothing accepted after the failover is lost. Before it, what the replica had not yet
  // received may be (README, Redis modes): counted above, not asserted.
  const afterSeqs = accepted.filter((seq) => broadcasts.get(seq)?.phase === 'after');
  expect(afterSeqs.length).toBeGreaterThan(0);
  expect(lostOn(onA).filter((seq) => afterSeqs.includes(seq))).toEqual([]);
  expect(lostOn(onB).filter((seq) => afterSeqs.includes(seq))).toEqual([]);
  // Calls accepted after the failover all answered; those before it too (each was replicated
  // long before the kill: one was in flight at most, and replication takes well under 1 ms).
  expect(count('after', 'none')).toBe(0);
  expect(count('before', 'none')).toBe(0);
}, 120_000);
