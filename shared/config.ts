import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { type RedisTarget, parseHostPorts } from './engine/redis/redisConnections';

/**
 * Secrets shipped in this repository for local try-outs (docker-compose.yml, the k8s dev
 * overlay): anyone can sign tokens with them, so a gateway using one says so loudly.
 */
export const PLACEHOLDER_JWT_SECRETS: readonly string[] = [
  'local-compose-secret-change-me',
  'dev-only-secret-do-not-use-in-production',
];

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
const emptyAsUndefined = (v: unknown) => (v === '' ? undefined : v);

/**
 * Byte bounds of history and events, also the engines' defaults when built without config.
 * An event of 1 MiB is as large as the largest request body; 4 MiB of history per topic holds
 * the default 1000 events of 4 KiB, or four events of the largest size, and is what one
 * socket's send queue holds, so a resume replays at most about one full queue per topic.
 */
export const DEFAULT_EVENT_MAX_BYTES = 1024 * 1024;
export const DEFAULT_HISTORY_MAX_BYTES = 4 * 1024 * 1024;

/** listen(2) takes an int; beyond this a value is a typo, not a queue anyone could fill. */
const MAX_LISTEN_BACKLOG = 1_048_576;

const envSchema = z.object({
  PORT: int(3000),
  HOST: z.string().default('0.0.0.0'),
  LISTEN_BACKLOG: z.coerce.number().int().min(1).max(MAX_LISTEN_BACKLOG).default(16_384),
  REDIS_URL: z.preprocess(emptyAsUndefined, z.string().url().optional()),
  REDIS_CLUSTER_NODES: z.preprocess(emptyAsUndefined, z.string().optional()),
  REDIS_PREFIX: z.string().default('mcpgw:'),
  REDIS_SENTINELS: z.preprocess(emptyAsUndefined, z.string().optional()),
  REDIS_SENTINEL_MASTER: z.preprocess(emptyAsUndefined, z.string().optional()),
  REDIS_PASSWORD: z.preprocess(emptyAsUndefined, z.string().optional()),
  REDIS_SENTINEL_PASSWORD: z.preprocess(emptyAsUndefined, z.string().optional()),
  REDIS_HEALTH_INTERVAL_MS: int(5000, 100),
  JWT_SECRET: z.preprocess(emptyAsUndefined, z.string().min(16).optional()),
  JWT_PUBLIC_KEY: z.preprocess(emptyAsUndefined, z.string().optional()),
  ALLOWED_ORIGINS: z.string().default(''),
  HEARTBEAT_INTERVAL_MS: int(30_000, 10),
  CLEANUP_INTERVAL_MS: int(60_000, 10),
  CLAIM_IDLE_MS: int(30_000, 10),
  MAX_DELIVERIES: int(5, 1),
  WORKER_CONCURRENCY: int(16, 1),
  MAX_BODY_BYTES: int(1024 * 1024, 1),
  MAX_JSON_DEPTH: int(64, 1),
  REQUEST_TIMEOUT_MS: int(30_000, 1000),
  HISTORY_MAXLEN: int(1000, 1),
  HISTORY_MAX_BYTES: int(DEFAULT_HISTORY_MAX_BYTES, 1024),
  HISTORY_TTL_S: int(3600, 1),
  EVENT_MAX_BYTES: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1024).optional()),
  RESUME_GRACE_MS: int(60_000, 0),
  SEND_QUEUE_MAX_BYTES: int(4 * 1024 * 1024, 1024),
  SEND_QUEUE_MAX_EVENTS: int(10_000, 10),
  SSE_BATCH_MS: int(0, 0),
  SSE_COMPRESSION: z.enum(['off', 'gzip']).default('off'),
  DRAIN_WINDOW_MS: int(10_000, 0),
  RATE_LIMIT_WINDOW_MS: int(10_000, 100),
  RATE_LIMIT_MAX: int(1000, 1),
  MAX_CONNECTIONS_PER_TOKEN: int(100, 1),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).default('info'),
  POD_ID: z.preprocess(emptyAsUndefined, z.string().optional()),
  TRUST_PROXY: z.string().default(''),
  MCP_SESSION_TTL_S: int(3600, 1),
  MCP_STREAM_TTL_S: int(300, 1),
  MCP_TASK_TTL_S: int(3600, 1),
  COMMAND_QUEUE_MAX: int(10_000, 1),
  COMMAND_PARTITIONS: int(1, 1),
  MAX_INFLIGHT_PER_TOKEN: int(32, 1),
  WORKER_SLOTS_PER_TOKEN: int(8, 1),
  TOOL_TIMEOUT_MS: int(60_000, 100),
  MAX_PROJECTS_PER_TOKEN: int(100, 1),
  MAX_ITEMS_PER_TOKEN: int(2000, 1),
  MCP_SERVER_MODULE: z.preprocess(emptyAsUndefined, z.string().optional()),
  OAUTH_ISSUER: z.preprocess(emptyAsUndefined, z.string().url().optional()),
  OAUTH_AUDIENCE: z.preprocess(emptyAsUndefined, z.string().optional()),
  OAUTH_JWKS_URL: z.preprocess(emptyAsUndefined, z.string().url().optional()),
  OAUTH_ALGORITHMS: z.string().default('RS256,PS256,ES256,EdDSA'),
  OAUTH_SCOPE_CLAIM: z.string().min(1).default('scope'),
  OAUTH_SCOPE_PREFIX: z.string().default('mcp:'),
  OAUTH_TOOLS_CLAIM: z.string().min(1).default('tools'),
  OAUTH_CLOCK_TOLERANCE_S: int(30, 0),
  OAUTH_JWKS_COOLDOWN_MS: int(30_000, 0),
  OAUTH_JWKS_MAX_AGE_MS: int(600_000, 1000),
});

/** Signature algorithms an authorization server's tokens may use: asymmetric ones only. */
const OAUTH_ALLOWED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

type Env = z.output<typeof envSchema>;
type Ctx = z.RefinementCtx;

/**
 * The environment as the settings the code reads: the names it uses, lists split, the bounds
 * between settings checked. `Config` is its output type, so the two cannot drift apart.
 */
const configSchema = envSchema.transform((e, ctx) => ({
  port: e.PORT,
  host: e.HOST,
  /**
   * Connections the kernel queues before the process accepts them (listen(2)'s backlog, capped
   * by net.core.somaxconn). A pod's death sends all its clients to the others at once: the
   * default holds the reconnects of ~16,000 streams where Node's 511 drops SYNs (1 s, 3 s retries).
   */
  listenBacklog: e.LISTEN_BACKLOG,
  /**
   * Where the Redis engine's Redis is: REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS (one of
   * them, with REDIS_PASSWORD and the like); unset: the in-process memory engine.
   */
  redis: redisTargetOf(e, ctx),
  redisPrefix: e.REDIS_PREFIX,
  /** How often the Redis engine PINGs every data node for mcpgw_redis_node_up and the like. */
  redisHealthIntervalMs: e.REDIS_HEALTH_INTERVAL_MS,
  /**
   * HS256 secret. Parsing makes none: without a static key `npm start` makes one for its run,
   * and a gateway pod refuses to start unless OAUTH_ISSUER is set (bin/lifecycle.ts).
   */
  jwtSecret: e.JWT_SECRET,
  /** PEM public key for RS256/ES256 tokens. */
  jwtPublicKey: e.JWT_PUBLIC_KEY?.replace(/\\n/g, '\n'),
  /**
   * Cross-origin callers allowed besides same-origin ones and clients sending no Origin;
   * ['*'] allows every origin.
   */
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
  /** Request bodies nesting arrays/objects deeper than this get 400. */
  maxJsonDepth: e.MAX_JSON_DEPTH,
  /**
   * How long a client may take to send a request's headers and body (not a stream's life):
   * slow or stalled uploads are cut after it.
   */
  requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
  historyMaxLen: e.HISTORY_MAXLEN,
  /** Bytes of event names and data kept per topic; the oldest events go first past it. */
  historyMaxBytes: e.HISTORY_MAX_BYTES,
  historyTtlS: e.HISTORY_TTL_S,
  /** A larger event (result, error, broadcast, client reply) is refused, never stored or sent. */
  eventMaxBytes: eventMaxBytesOf(e, ctx),
  resumeGraceMs: e.RESUME_GRACE_MS,
  sendQueueMaxBytes: e.SEND_QUEUE_MAX_BYTES,
  sendQueueMaxEvents: e.SEND_QUEUE_MAX_EVENTS,
  /** Frames for one socket within this window go out as one write; 0: per event-loop tick. */
  sseBatchMs: e.SSE_BATCH_MS,
  /**
   * gzip: streams and JSON bodies (from 1 KiB) are gzipped for clients that accept it, each
   * stream flushed per event (CPU and ~42 KiB per compressed socket); off: untouched.
   */
  sseCompression: e.SSE_COMPRESSION,
  drainWindowMs: e.DRAIN_WINDOW_MS,
  rateLimitWindowMs: e.RATE_LIMIT_WINDOW_MS,
  rateLimitMax: e.RATE_LIMIT_MAX,
  maxConnectionsPerToken: e.MAX_CONNECTIONS_PER_TOKEN,
  logLevel: e.LOG_LEVEL,
  /** This process's id in logs, the registry and consumer groups. */
  podId: e.POD_ID ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
  /**
   * Which proxies' X-Forwarded-For to believe for the client IP (logs, per-IP rate limits):
   * false (none), a hop count, or addresses/subnets (Express's `trust proxy`).
   */
  trustProxy: parseTrustProxy(e.TRUST_PROXY),
  /** An MCP session (Streamable HTTP or legacy SSE) ends after this long without a request. */
  mcpSessionTtlS: e.MCP_SESSION_TTL_S,
  /** An MCP request stream stays resumable (Last-Event-ID) this long after its last message. */
  mcpStreamTtlS: e.MCP_STREAM_TTL_S,
  /** A 2026-07-28 task (Tasks extension) and its outcome live this long after its creation. */
  mcpTaskTtlS: e.MCP_TASK_TTL_S,
  /** Commands waiting or running in the shared queue; past it, new commands get 503. */
  commandQueueMax: e.COMMAND_QUEUE_MAX,
  /**
   * Streams the Redis engine spreads commands over, each with its own consumer group (on a
   * Cluster, on different shards); a token's commands all go to one. The memory engine ignores it.
   */
  commandPartitions: e.COMMAND_PARTITIONS,
  /** Commands of one token (sub) queued or running, cluster-wide; past it, 429. */
  maxInflightPerToken: e.MAX_INFLIGHT_PER_TOKEN,
  /** Handler slots of one worker one token may hold (at most workerConcurrency - 1). */
  workerSlotsPerToken: e.WORKER_SLOTS_PER_TOKEN,
  /** A request to a worker's MCP server (a tool call) running longer is cancelled. */
  toolTimeoutMs: e.TOOL_TIMEOUT_MS,
  /** Projects one token (sub) may create. */
  backlogMaxProjectsPerToken: e.MAX_PROJECTS_PER_TOKEN,
  /** Actors, stories and features one token (sub) may create, together. */
  backlogMaxItemsPerToken: e.MAX_ITEMS_PER_TOKEN,
  /**
   * A module whose MCP server the workers serve instead of the backlog's (a path, absolute or
   * relative to the working directory; worker/server/serverModule.ts). Unset: the backlog.
   */
  mcpServerModule: e.MCP_SERVER_MODULE,
  /** Set when tokens of an external authorization server are accepted too. */
  oauth: oauthOf(e, ctx),
}));

/** Every setting the processes read (the output of the schema above). */
export type Config = z.output<typeof configSchema>;

/** Access tokens of an external authorization server (OAUTH_ISSUER set). */
export type OAuthConfig = NonNullable<Config['oauth']>;

/**
 * Every setting the processes read, parsed once from the environment, typed and frozen.
 * README's environment table lists the same names and defaults.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const detail = parsed.error.issues
      .map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message))
      .join('; ');
    throw new Error(`Invalid configuration: ${detail}`);
  }
  return Object.freeze(parsed.data);
}

/**
 * An event must fit its topic's history, and a socket's send queue with room to spare (else it
 * could never be delivered). Unset, it is the default within both bounds.
 */
function eventMaxBytesOf(e: Env, ctx: Ctx): number {
  const bound = Math.min(e.HISTORY_MAX_BYTES, Math.floor(e.SEND_QUEUE_MAX_BYTES / 2));
  const eventMaxBytes = e.EVENT_MAX_BYTES ?? Math.min(DEFAULT_EVENT_MAX_BYTES, bound);
  if (eventMaxBytes > bound) {
    ctx.addIssue(
      'EVENT_MAX_BYTES must be at most HISTORY_MAX_BYTES and half of SEND_QUEUE_MAX_BYTES',
    );
  }
  return eventMaxBytes;
}

function oauthOf(e: Env, ctx: Ctx) {
  if (!e.OAUTH_ISSUER) {
    if (e.OAUTH_AUDIENCE || e.OAUTH_JWKS_URL) {
      ctx.addIssue('OAUTH_AUDIENCE and OAUTH_JWKS_URL need OAUTH_ISSUER');
    }
    return undefined;
  }
  if (!e.OAUTH_AUDIENCE) {
    ctx.addIssue(
      "OAUTH_ISSUER needs OAUTH_AUDIENCE (this gateway's resource URI, e.g. https://mcp.example.com/mcp)",
    );
    return undefined;
  }
  const algorithms = e.OAUTH_ALGORITHMS.split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  const refused = algorithms.filter((a) => !OAUTH_ALLOWED_ALGORITHMS.includes(a));
  if (algorithms.length === 0 || refused.length > 0) {
    ctx.addIssue(
      `OAUTH_ALGORITHMS must list some of ${OAUTH_ALLOWED_ALGORITHMS.join(', ')} (refused: ${refused.join(', ') || 'none given'})`,
    );
    return undefined;
  }
  return Object.freeze({
    /** The authorization server's issuer URL: tokens whose `iss` is this are its tokens. */
    issuer: e.OAUTH_ISSUER,
    /** This gateway's resource URI: the `aud` its tokens must carry (RFC 8707). */
    audience: e.OAUTH_AUDIENCE,
    /** Unset: the jwks_uri of the issuer's metadata (RFC 8414 or OpenID discovery). */
    ...(e.OAUTH_JWKS_URL ? { jwksUrl: e.OAUTH_JWKS_URL } : {}),
    algorithms,
    /**
     * Claims holding the scopes (each a space-separated string or a list), read together:
     * `scope`; Entra: `scp` (delegated) and `roles` (app roles of client-credentials tokens).
     */
    scopeClaims: e.OAUTH_SCOPE_CLAIM.split(',')
      .map((c) => c.trim())
      .filter(Boolean),
    /** `<prefix>master`, `<prefix>team`, `<prefix>readonly` are the scopes of the token types. */
    scopePrefix: e.OAUTH_SCOPE_PREFIX,
    /** Claim holding a token's tool allow-list (a list or a space-separated string). */
    toolsClaim: e.OAUTH_TOOLS_CLAIM,
    clockToleranceS: e.OAUTH_CLOCK_TOLERANCE_S,
    /** Least time between two JWKS fetches for an unknown `kid`. */
    jwksCooldownMs: e.OAUTH_JWKS_COOLDOWN_MS,
    /** The JWKS is fetched again after this long even without an unknown `kid`. */
    jwksCacheMaxAgeMs: e.OAUTH_JWKS_MAX_AGE_MS,
  });
}

const REDIS_MODES = ['REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS'] as const;

/**
 * One Redis mode at most, with its companions: REDIS_PASSWORD for a Cluster's nodes or a Sentinel
 * group's data servers (a REDIS_URL carries its own), REDIS_SENTINEL_MASTER and
 * REDIS_SENTINEL_PASSWORD for the sentinels.
 */
function redisTargetOf(e: Env, ctx: Ctx): Readonly<RedisTarget> | undefined {
  const set = REDIS_MODES.filter((mode) => e[mode]);
  if (set.length > 1) {
    ctx.addIssue(`set only one Redis mode: ${REDIS_MODES.join(', ')} (got ${set.join(' and ')})`);
    return undefined;
  }
  if (!e.REDIS_SENTINELS && (e.REDIS_SENTINEL_MASTER || e.REDIS_SENTINEL_PASSWORD)) {
    ctx.addIssue('REDIS_SENTINEL_MASTER and REDIS_SENTINEL_PASSWORD need REDIS_SENTINELS');
    return undefined;
  }
  if (e.REDIS_PASSWORD && !e.REDIS_CLUSTER_NODES && !e.REDIS_SENTINELS) {
    ctx.addIssue(
      'REDIS_PASSWORD needs REDIS_CLUSTER_NODES or REDIS_SENTINELS (a REDIS_URL carries its own password)',
    );
    return undefined;
  }
  const password = e.REDIS_PASSWORD ? { password: e.REDIS_PASSWORD } : {};
  try {
    if (e.REDIS_CLUSTER_NODES) {
      const nodes = parseHostPorts('REDIS_CLUSTER_NODES', e.REDIS_CLUSTER_NODES);
      return Object.freeze({ kind: 'cluster', nodes, ...password });
    }
    if (e.REDIS_SENTINELS) {
      if (!e.REDIS_SENTINEL_MASTER) {
        ctx.addIssue('REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the master group name)');
        return undefined;
      }
      return Object.freeze({
        kind: 'sentinel',
        sentinels: parseHostPorts('REDIS_SENTINELS', e.REDIS_SENTINELS),
        masterName: e.REDIS_SENTINEL_MASTER,
        ...password,
        ...(e.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: e.REDIS_SENTINEL_PASSWORD } : {}),
      });
    }
  } catch (error) {
    ctx.addIssue((error as Error).message);
    return undefined;
  }
  return e.REDIS_URL ? Object.freeze({ kind: 'url', url: e.REDIS_URL }) : undefined;
}

/** '' or 'false': none; 'true': all; a number: that many hops; else a list of addresses. */
function parseTrustProxy(value: string): boolean | number | string {
  const v = value.trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  return /^\d+$/.test(v) ? Number(v) : v;
}
