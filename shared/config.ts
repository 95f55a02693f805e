import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';

/**
 * Every setting the processes read, parsed once from the environment, typed and frozen.
 * README's environment table lists the same names and defaults.
 */
const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
const emptyAsUndefined = (v: unknown) => (v === '' ? undefined : v);

const envSchema = z.object({
  PORT: int(3000),
  HOST: z.string().default('0.0.0.0'),
  REDIS_URL: z.preprocess(emptyAsUndefined, z.string().url().optional()),
  REDIS_PREFIX: z.string().default('mcpgw:'),
  JWT_SECRET: z.preprocess(emptyAsUndefined, z.string().min(16).optional()),
  JWT_PUBLIC_KEY: z.preprocess(emptyAsUndefined, z.string().optional()),
  ALLOWED_ORIGINS: z.string().default('*'),
  HEARTBEAT_INTERVAL_MS: int(30_000, 10),
  CLEANUP_INTERVAL_MS: int(60_000, 10),
  CLAIM_IDLE_MS: int(30_000, 10),
  MAX_DELIVERIES: int(5, 1),
  WORKER_CONCURRENCY: int(16, 1),
  MAX_BODY_BYTES: int(1024 * 1024, 1),
  HISTORY_MAXLEN: int(1000, 1),
  HISTORY_TTL_S: int(3600, 1),
  RESUME_GRACE_MS: int(60_000, 0),
  SEND_QUEUE_MAX_BYTES: int(4 * 1024 * 1024, 1024),
  SEND_QUEUE_MAX_EVENTS: int(10_000, 10),
  DRAIN_WINDOW_MS: int(10_000, 0),
  RATE_LIMIT_WINDOW_MS: int(10_000, 100),
  RATE_LIMIT_MAX: int(1000, 1),
  MAX_CONNECTIONS_PER_TOKEN: int(100, 1),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).default('info'),
  POD_ID: z.preprocess(emptyAsUndefined, z.string().optional()),
  TRUST_PROXY: z.string().default(''),
  MCP_SESSION_TTL_S: int(3600, 1),
  MCP_STREAM_TTL_S: int(300, 1),
  COMMAND_QUEUE_MAX: int(10_000, 1),
  MAX_INFLIGHT_PER_TOKEN: int(32, 1),
  WORKER_SLOTS_PER_TOKEN: int(8, 1),
  TOOL_TIMEOUT_MS: int(60_000, 100),
  MAX_PROJECTS_PER_TOKEN: int(100, 1),
  MAX_ITEMS_PER_TOKEN: int(2000, 1),
});

export interface Config {
  port: number;
  host: string;
  /** Unset: the in-process memory engine. */
  redisUrl?: string;
  redisPrefix: string;
  /** HS256 secret; when neither it nor jwtPublicKey is set, a random secret is made. */
  jwtSecret?: string;
  /** PEM public key for RS256/ES256 tokens. */
  jwtPublicKey?: string;
  /** True when jwtSecret was generated at start (npm start prints tokens then). */
  jwtSecretGenerated: boolean;
  /** ['*'] allows every origin. */
  allowedOrigins: string[];
  heartbeatIntervalMs: number;
  cleanupIntervalMs: number;
  claimIdleMs: number;
  maxDeliveries: number;
  workerConcurrency: number;
  maxBodyBytes: number;
  historyMaxLen: number;
  historyTtlS: number;
  resumeGraceMs: number;
  sendQueueMaxBytes: number;
  sendQueueMaxEvents: number;
  drainWindowMs: number;
  rateLimitWindowMs: number;
  rateLimitMax: number;
  maxConnectionsPerToken: number;
  logLevel: string;
  /** This process's id in logs, the registry and consumer groups. */
  podId: string;
  /**
   * Which proxies' X-Forwarded-For to believe for the client IP (logs, per-IP rate limits):
   * false (none), a hop count, or addresses/subnets (Express's `trust proxy`).
   */
  trustProxy: boolean | number | string;
  /** An MCP session (Streamable HTTP or legacy SSE) ends after this long without a request. */
  mcpSessionTtlS: number;
  /** An MCP request stream stays resumable (Last-Event-ID) this long after its last message. */
  mcpStreamTtlS: number;
  /** Commands waiting or running in the shared queue; past it, new commands get 503. */
  commandQueueMax: number;
  /** Commands of one token (sub) queued or running, cluster-wide; past it, 429. */
  maxInflightPerToken: number;
  /** Handler slots of one worker one token may hold (at most workerConcurrency - 1). */
  workerSlotsPerToken: number;
  /** A request to a worker's MCP server (a tool call) running longer is cancelled. */
  toolTimeoutMs: number;
  /** Projects one token (sub) may create. */
  backlogMaxProjectsPerToken: number;
  /** Actors, stories and features one token (sub) may create, together. */
  backlogMaxItemsPerToken: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`Invalid configuration: ${detail}`);
  }
  const e = parsed.data;
  const jwtSecretGenerated = !e.JWT_SECRET && !e.JWT_PUBLIC_KEY;
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    jwtSecret: jwtSecretGenerated ? randomBytes(32).toString('hex') : e.JWT_SECRET,
    jwtPublicKey: e.JWT_PUBLIC_KEY?.replace(/\\n/g, '\n'),
    jwtSecretGenerated,
    allowedOrigins: Object.freeze(
      e.ALLOWED_ORIGINS.split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    ) as string[],
    heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
    cleanupIntervalMs: e.CLEANUP_INTERVAL_MS,
    claimIdleMs: e.CLAIM_IDLE_MS,
    maxDeliveries: e.MAX_DELIVERIES,
    workerConcurrency: e.WORKER_CONCURRENCY,
    maxBodyBytes: e.MAX_BODY_BYTES,
    historyMaxLen: e.HISTORY_MAXLEN,
    historyTtlS: e.HISTORY_TTL_S,
    resumeGraceMs: e.RESUME_GRACE_MS,
    sendQueueMaxBytes: e.SEND_QUEUE_MAX_BYTES,
    sendQueueMaxEvents: e.SEND_QUEUE_MAX_EVENTS,
    drainWindowMs: e.DRAIN_WINDOW_MS,
    rateLimitWindowMs: e.RATE_LIMIT_WINDOW_MS,
    rateLimitMax: e.RATE_LIMIT_MAX,
    maxConnectionsPerToken: e.MAX_CONNECTIONS_PER_TOKEN,
    logLevel: e.LOG_LEVEL,
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    podId: e.POD_ID ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    mcpSessionTtlS: e.MCP_SESSION_TTL_S,
    mcpStreamTtlS: e.MCP_STREAM_TTL_S,
    commandQueueMax: e.COMMAND_QUEUE_MAX,
    maxInflightPerToken: e.MAX_INFLIGHT_PER_TOKEN,
    workerSlotsPerToken: e.WORKER_SLOTS_PER_TOKEN,
    toolTimeoutMs: e.TOOL_TIMEOUT_MS,
    backlogMaxProjectsPerToken: e.MAX_PROJECTS_PER_TOKEN,
    backlogMaxItemsPerToken: e.MAX_ITEMS_PER_TOKEN,
  });
}

/** '' or 'false': none; 'true': all; a number: that many hops; else a list of addresses. */
function parseTrustProxy(value: string): boolean | number | string {
  const v = value.trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  return /^\d+$/.test(v) ? Number(v) : v;
}
