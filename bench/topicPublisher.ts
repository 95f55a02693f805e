/**
 * A publisher of the redisCluster scenario (forked by bench/redisClusterScenario.ts): the
 * project's Redis engine, built from its environment like a worker's (REDIS_URL or
 * REDIS_CLUSTER_NODES, REDIS_PREFIX), publishing bench events to many topics with the call a
 * worker makes for every progress and result event (`engine.publish`: history and pub/sub in
 * one script, on the master that owns the topic's slot).
 *
 * `publish`: for seq 0 .. count-1, one event to each topic in turn, at most `inFlight` awaiting
 * their reply, as fast as Redis answers; then `done` with the failures and the send times.
 */
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../shared/config';
import { createEngine, type Engine } from '../shared/engine';
import { silentLogger } from '../shared/logger';

export type ToPublisher =
  | {
      cmd: 'publish';
      topics: string[];
      /** Events per topic, seq 0 .. count-1. */
      count: number;
      /** The event name and the message's `type` (bench/protocol.ts: BENCH_EVENT, WARM_EVENT). */
      event: string;
      inFlight: number;
    }
  | { cmd: 'close' };

export type FromPublisher =
  | { type: 'ready' }
  | {
      type: 'done';
      published: number;
      failed: number;
      failures: string[];
      /** Epoch ms of the first and the last publish sent. */
      firstSent: number;
      lastSent: number;
    }
  | { type: 'error'; message: string };

const now = () => performance.timeOrigin + performance.now();
const send = (message: FromPublisher) => process.send?.(message);

let engine: Engine | undefined;

async function publishAll(message: Extract<ToPublisher, { cmd: 'publish' }>): Promise<void> {
  const { topics, count, event, inFlight } = message;
  const failures: string[] = [];
  let failed = 0;
  let published = 0;
  const firstSent = now();
  let lastSent = firstSent;
  const pending = new Set<Promise<void>>();
  for (let seq = 0; seq < count; seq++) {
    for (const topic of topics) {
      // Key order matters: the load generators match `{"type":..,"seq":..,"sentAt":..`.
      lastSent = now();
      const data = JSON.stringify({
        type: event,
        seq,
        sentAt: lastSent,
        result: { message: 'progress', level: 'info' },
      });
      const p = engine!.publish(topic, event, data).then(
        () => {
          published++;
        },
        (err: unknown) => {
          failed++;
          if (failures.length < 5) failures.push(err instanceof Error ? err.message : String(err));
        },
      );
      const tracked = p.finally(() => pending.delete(tracked));
      pending.add(tracked);
      if (pending.size >= inFlight) await Promise.race(pending);
    }
  }
  await Promise.all(pending);
  send({ type: 'done', published, failed, failures, firstSent, lastSent });
}

async function main(): Promise<void> {
  engine = createEngine(loadConfig(process.env), silentLogger());
  await engine.start();
  send({ type: 'ready' });
}

process.on('message', (message: ToPublisher) => {
  if (message.cmd === 'publish') {
    publishAll(message).catch((err: unknown) => send({ type: 'error', message: String(err) }));
  } else if (message.cmd === 'close') {
    void (engine?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  }
});

// The benchmark went away: nothing to publish for.
process.on('disconnect', () => process.exit(0));

main().catch((err: unknown) => {
  send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
