import type { Config } from '../../shared/config';
import { publishSeedCancel } from '../../shared/engine/cancellations';
import type { ConnectionRecord, Engine, StreamTransport } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { Metrics } from '../../shared/metrics';
import { topics } from '../../shared/protocol';
import type { TokenClaims } from '../../shared/types';
import type { BackgroundWork } from '../background';

/**
 * A stream of another transport (MCP's GET /mcp, POST /mcp SSE streams, GET /sse) listed in
 * the registry, so one mechanism counts, keeps alive, expires and sweeps every stream kind.
 */
export interface TrackedStream {
  readonly connectionId: string;
  /** Drops the registry entry (awaited on shutdown). Idempotent. */
  release(): Promise<void>;
}

interface TrackedEntry {
  record: ConnectionRecord;
  expiresAtMs?: number;
  end: (reason: 'token-expired') => void;
  /** False once released (a stale touch must not register it again). */
  registered: boolean;
}

/** Told the open entries of dead pods a sweep found (their streams are gone). */
export type LapsedListener = (records: ConnectionRecord[]) => Promise<void>;

/** The seed connections this pod holds, as the registry upkeep sees them. */
export interface LocalStreams {
  /** Ids of the seed connections registered from this pod. */
  registeredIds(): string[];
  /** The registry record of an open, registered seed connection of this pod. */
  recordOf(connectionId: string): ConnectionRecord | undefined;
}

export interface RegistryUpkeepDeps {
  config: Config;
  engine: Engine;
  logger: Logger;
  metrics: Metrics;
  background: BackgroundWork;
  local: LocalStreams;
}

/**
 * This pod's part of the cluster-wide connection registry: registers streams under the
 * per-token limit, lists the other transports' streams, keeps every entry of this pod alive at
 * each sweep (registering again what the registry lost), and drops the entries of pods that
 * stopped touching theirs.
 */
export class RegistryUpkeep {
  /** Open streams of the other transports on this pod, by registry id. */
  private readonly tracked = new Map<string, TrackedEntry>();
  private readonly lapsedListeners: LapsedListener[] = [];

  constructor(private readonly deps: RegistryUpkeepDeps) {}

  /** Registers the record under the cluster-wide per-token limit: 429 when over it. */
  async registerLimited(record: ConnectionRecord): Promise<void> {
    const max = this.deps.config.maxConnectionsPerToken;
    if (!(await this.deps.engine.registerConnection(record, { maxPerToken: max }))) {
      throw errors.tooManyConnections(max);
    }
  }

  /**
   * Lists a stream of another transport in the registry, before its response starts: a 429
   * GatewayError when its token's sub already holds MAX_CONNECTIONS_PER_TOKEN streams of any
   * kind in the cluster. `end` is how the sweep ends it when its token expires.
   */
  async track(
    claims: TokenClaims,
    transport: Exclude<StreamTransport, 'seed'>,
    connectionId: string,
    end: (reason: 'token-expired') => void,
  ): Promise<TrackedStream> {
    const record: ConnectionRecord = {
      connectionId,
      sub: claims.sub,
      tokenType: claims.type,
      podId: this.deps.config.podId,
      connectedAt: Date.now(),
      transport,
      resumable: false,
    };
    await this.registerLimited(record);
    const entry: TrackedEntry = {
      record,
      expiresAtMs: claims.exp === undefined ? undefined : claims.exp * 1000,
      end,
      registered: true,
    };
    this.tracked.set(connectionId, entry);
    this.deps.metrics.connectionsOpen.inc({ token_type: claims.type, transport });
    let released: Promise<void> | undefined;
    return {
      connectionId,
      release: () => {
        released ??= this.untrack(entry);
        return released;
      },
    };
  }

  /** Runs `listener` with the open entries of dead pods each sweep finds. */
  onLapsed(listener: LapsedListener): void {
    this.lapsedListeners.push(listener);
  }

  /** After Redis came back (it may have forgotten the registry): registers every stream again. */
  registerAllAgain(): void {
    const others = [...this.tracked.values()].filter((t) => t.registered);
    void this.deps.background.run(
      this.registerAgain([
        ...this.deps.local.registeredIds(),
        ...others.map((t) => t.record.connectionId),
      ]),
    );
  }

  /**
   * The registry part of the cleanup sweep: ends tracked streams whose token expired, touches
   * every entry of this pod, drops the entries of dead pods (telling the lapsed listeners) and
   * the closed connections whose resume window passed (cancelling their calls).
   */
  async sweep(now: number): Promise<void> {
    const { engine, config, logger, metrics } = this.deps;
    for (const entry of [...this.tracked.values()]) {
      if (entry.expiresAtMs !== undefined && entry.expiresAtMs <= now) {
        metrics.staleConnectionsRemoved.inc({ reason: 'token-expired' });
        entry.end('token-expired');
      }
    }
    const alive = this.deps.local.registeredIds();
    for (const entry of this.tracked.values())
      if (entry.registered) alive.push(entry.record.connectionId);
    const unknown = alive.length > 0 ? await engine.touchConnections(alive) : [];
    if (unknown.length > 0) await this.registerAgain(unknown);
    const { lapsed, expired } = await engine.sweepConnections({
      openStaleAfterMs: this.openStaleAfterMs,
      resumeWindowMs: config.resumeGraceMs,
    });
    if (lapsed.length > 0) {
      metrics.staleConnectionsRemoved.inc({ reason: 'pod-gone' }, lapsed.length);
      logger.info('Streams of a gateway that stopped are no longer counted as open', {
        count: lapsed.length,
      });
      await Promise.all(this.lapsedListeners.map((listener) => listener(lapsed)));
    }
    if (expired.length > 0) {
      logger.info('Removed connections not resumed in time from the registry', {
        count: expired.length,
      });
      // Nobody will read their results: stop their calls on whichever worker runs them, and
      // let their histories go (a dead pod never capped them), keeping the cap a little while
      // for the cancelled calls' last events.
      const reason = 'Connection closed and not resumed';
      await Promise.all(
        expired.flatMap((connectionId) => [
          publishSeedCancel(engine, { connectionId, reason }),
          engine.capHistoryTtl(topics.connection(connectionId), config.cleanupIntervalMs),
        ]),
      );
    }
  }

  /**
   * An open entry untouched for two cleanup intervals belongs to a dead pod: it stops counting
   * as open (a seed connection stays resumable, and /send keeps accepting commands for it, for
   * the resume window from its last touch).
   */
  private get openStaleAfterMs(): number {
    return 2 * this.deps.config.cleanupIntervalMs;
  }

  private untrack(entry: TrackedEntry): Promise<void> {
    const { connectionId, tokenType, transport } = entry.record;
    if (this.tracked.get(connectionId) === entry) this.tracked.delete(connectionId);
    this.deps.metrics.connectionsOpen.dec({ token_type: tokenType, transport });
    entry.registered = false;
    const releasing = this.deps.engine.unregisterConnection(connectionId).catch((err: unknown) => {
      this.deps.logger.warn('Releasing a closed stream failed', {
        connectionId,
        error: String(err),
      });
    });
    return this.deps.background.run(releasing);
  }

  /** Registers again those of these streams still open here (the registry lost them). */
  private async registerAgain(connectionIds: string[]): Promise<void> {
    try {
      await Promise.all(
        connectionIds.flatMap((id) => {
          const record = this.deps.local.recordOf(id);
          if (record) return [this.deps.engine.registerConnection(record)];
          const other = this.tracked.get(id);
          return other?.registered ? [this.deps.engine.registerConnection(other.record)] : [];
        }),
      );
      this.deps.logger.info('Registered connections again', { count: connectionIds.length });
    } catch (err) {
      this.deps.logger.warn('Registering connections again failed', { error: String(err) });
    }
  }
}
