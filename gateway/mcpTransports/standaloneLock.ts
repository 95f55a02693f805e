import { randomUUID } from 'node:crypto';
import type { KeyValueStore } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import { mcpNames } from '../../shared/mcpTransports';

/**
 * How long a gateway's liveness key lives unrefreshed, and how often it is refreshed. A pod
 * killed without a word is known dead this long after its last refresh: less than the two
 * reconnection attempts an MCP client makes STREAM_RETRY_MS apart (see stream.ts).
 */
const ALIVE_TTL_MS = 3000;
const ALIVE_REFRESH_MS = 1000;

/**
 * A key per gateway pod, refreshed every second while it runs and deleted when it shuts down:
 * whether the pod holding a session's standalone-stream lock still runs. One key per pod, not
 * one per stream, so the refresh costs the same however many streams are open.
 */
export class PodLiveness {
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly kv: KeyValueStore,
    readonly podId: string,
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer ??= setInterval(() => void this.refresh(), ALIVE_REFRESH_MS).unref();
  }

  /** Stops refreshing and deletes the key: this pod's locks may be taken over at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.kv.delete(mcpNames.podAliveKey(this.podId)).catch(() => undefined);
  }

  async isAlive(podId: string): Promise<boolean> {
    return (await this.kv.get(mcpNames.podAliveKey(podId))) !== undefined;
  }

  private async refresh(): Promise<void> {
    await this.kv.set(mcpNames.podAliveKey(this.podId), '1', ALIVE_TTL_MS).catch(() => false);
  }
}

export interface StandaloneLock {
  /** Restarts the TTL; false when the lock is no longer ours (taken over). */
  refresh(): Promise<boolean>;
  release(): Promise<void>;
}

/**
 * Takes a session's standalone-stream lock (one GET stream per session, cluster-wide). The
 * value names the holding pod: a lock whose pod stopped (SIGKILL: its liveness key lapsed) is
 * taken over at once, so a client reconnecting to another pod keeps its stream. A lock held
 * by a running pod answers 409.
 */
export async function acquireStandaloneLock(
  kv: KeyValueStore,
  liveness: PodLiveness,
  sessionId: string,
  ttlMs: number,
): Promise<StandaloneLock> {
  const key = mcpNames.standaloneLockKey(sessionId);
  const value = `${liveness.podId} ${randomUUID()}`;
  const lock: StandaloneLock = {
    refresh: () => kv.touch(key, ttlMs, value),
    release: async () => {
      await kv.delete(key, value);
    },
  };
  if (await kv.set(key, value, ttlMs, 'ifAbsent')) return lock;
  const held = await kv.get(key);
  const holder = held?.slice(0, held.indexOf(' '));
  if (held === undefined || (holder !== liveness.podId && !(await liveness.isAlive(holder!)))) {
    // Only the lock we saw is deleted: of two pods racing to take it over, one wins the set.
    if (held !== undefined) await kv.delete(key, held);
    if (await kv.set(key, value, ttlMs, 'ifAbsent')) return lock;
  }
  throw errors.conflict('This session already has an open GET stream');
}
