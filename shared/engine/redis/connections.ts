import type Redis from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { EngineError, engineErrors } from '../../errors';
import type { Logger } from '../../logger';
import type { Metrics } from '../../metrics';
import { type RedisTarget, createRedisClient } from './redisConnections';

/**
 * What each connection is for. They are separate because a connection in subscriber mode can
 * run nothing else, and a blocking XREADGROUP holds its connection until it returns.
 */
export type ConnectionRole = 'commands' | 'subscriber' | 'blocking';

export interface ConnectionContext {
  target: RedisTarget;
  prefix: string;
  logger: Logger;
  metrics?: Metrics;
}

/** Reconnect quickly after a restart or failover, but never hammer a Redis that is down. */
const MAX_RECONNECT_DELAY_MS = 1000;
/**
 * Reconnect attempts a queued command waits through before it fails: a short blip is ridden
 * out, a real outage surfaces as an error (a 503 on the gateway) within a few seconds.
 */
const COMMAND_RETRIES_WHILE_DOWN = 5;
/** How long quit() may take before the socket is simply closed. */
const QUIT_TIMEOUT_MS = 1000;

/** A connection that connects on first use (or connect()) and reports its health. */
export function openConnection(
  context: ConnectionContext,
  role: ConnectionRole,
  name: string = role,
): Redis {
  const options: RedisOptions = {
    lazyConnect: true,
    connectionName: connectionName(`${context.prefix}${name}`),
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 5), MAX_RECONNECT_DELAY_MS),
    // The blocking reader just waits for Redis to come back; everything else fails after a while.
    maxRetriesPerRequest: role === 'blocking' ? null : COMMAND_RETRIES_WHILE_DOWN,
    // Normal traffic is many small commands: batch those issued in the same tick.
    enableAutoPipelining: role === 'commands',
    autoResubscribe: true,
    autoResendUnfulfilledCommands: true,
    // ioredis arms this timer even for a socket already closed; keep it short so a closed
    // engine does not hold the process open for the 2 s default.
    disconnectTimeout: 500,
  };
  const connection = createRedisClient(context.target, options, role);
  watchHealth(connection, context, name);
  return connection;
}

/**
 * Logs the first error of an outage (not every failed reconnect attempt), counts every error
 * and every reconnect. ioredis also needs an 'error' listener, or it prints them itself.
 */
function watchHealth(connection: Redis, context: ConnectionContext, name: string): void {
  const { logger, metrics } = context;
  let everReady = false;
  let healthy = true;
  connection.on('error', (error: Error) => {
    metrics?.redisErrors.inc();
    if (!healthy) return;
    healthy = false;
    logger.warn('redis connection error', { connection: name, error: error.message });
  });
  connection.on('close', () => {
    if (healthy && everReady && connection.status !== 'end') {
      logger.warn('redis connection lost', { connection: name });
    }
    healthy = false;
  });
  connection.on('ready', () => {
    if (everReady) {
      metrics?.redisReconnects.inc();
      logger.info('redis connection re-established', { connection: name });
    }
    everReady = true;
    healthy = true;
  });
}

/**
 * Resolves once the connection is ready; rejects after `timeoutMs`, naming the last error seen
 * (a refused connection, a wrong password, unreachable sentinels). Starts connecting if idle.
 */
export function whenReady(connection: Redis, timeoutMs: number, what: string): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError: string | undefined;
    const onError = (error: Error & { lastNodeError?: Error }) => {
      // A Cluster client that reached no node says only that; the node's own error says why.
      const nodeError = error.lastNodeError?.message;
      lastError = nodeError ? `${error.message} ${nodeError}` : error.message;
    };
    const timer = setTimeout(() => {
      connection.off('ready', onReady);
      connection.off('error', onError);
      const cause = lastError ? ` (last error: ${lastError})` : '';
      reject(new Error(`${what}: Redis not ready within ${timeoutMs} ms${cause}`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      connection.off('error', onError);
      resolve();
    };
    connection.once('ready', onReady);
    connection.on('error', onError);
    // connect() rejects on the first failed attempt, but ioredis keeps retrying by itself.
    if (connection.status === 'wait') connection.connect().catch(() => undefined);
  });
}

/** Closes gracefully (QUIT) when connected, at once otherwise. Never throws. */
export async function closeConnection(connection: Redis): Promise<void> {
  if (connection.status === 'end') return;
  if (connection.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, QUIT_TIMEOUT_MS);
    });
    await Promise.race([connection.quit().catch(() => undefined), timeout]);
    clearTimeout(timer);
  }
  // Also stops reconnect attempts and fails whatever is still queued.
  connection.disconnect();
}

/** CLIENT SETNAME refuses spaces and newlines (the whole connection would fail): replace them. */
export function connectionName(name: string): string {
  return name.replace(/[^\x21-\x7e]/g, '_');
}

/** Redis failures on the request path surface as engine errors (the gateway answers 503). */
export function unavailable(what: string, error: unknown): Error {
  if (error instanceof EngineError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return engineErrors.unavailable(`${what}: ${message}`);
}
