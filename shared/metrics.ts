import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric the gateway and worker export, on an explicit registry (one per process role,
 * so tests can build several apps in one process). Labels stay bounded: no ids, no tokens.
 * deploy/ dashboards and alerts query these names; test/ops checks that they exist.
 */
export function createMetrics(role: 'gateway' | 'worker' | 'all') {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry, prefix: 'mcpgw_' });
  const r = [registry];
  // Read on scrape (prom-client collect callbacks), from sources the roles register.
  const readinessChecks = new Set<ReadinessCheck>();
  let backlogSource: BacklogSource | undefined;
  return {
    registry,
    /**
     * Adds what this process's /ready evaluates (gateway: engine up, not draining; worker:
     * engine up, not stopping); mcpgw_ready is 1 when every check passes. Returns a remover.
     */
    addReadinessCheck(check: ReadinessCheck): () => void {
      readinessChecks.add(check);
      return () => readinessChecks.delete(check);
    },
    /** Where mcpgw_command_queue is read from on scrape (the engine); undefined stops it. */
    setCommandBacklogSource(source: BacklogSource | undefined): void {
      backlogSource = source;
    },
    ready: new Gauge({
      name: 'mcpgw_ready',
      help: 'Whether this process answers /ready with 200 (1) or not: starting, draining, engine down (0)',
      registers: r,
      collect() {
        let ready = readinessChecks.size > 0;
        for (const check of readinessChecks) ready &&= safely(check);
        this.set(ready ? 1 : 0);
      },
    }),
    connectionsOpen: new Gauge({
      name: 'mcpgw_connections_open',
      help: 'Open streams on this pod, by token type and transport (seed: /mcp/sse; streamable-http: GET and POST /mcp; legacy-sse: /sse)',
      labelNames: ['token_type', 'transport'],
      registers: r,
    }),
    eventsWritten: new Counter({
      name: 'mcpgw_events_written_total',
      help: 'SSE events written to sockets, by event name class',
      labelNames: ['event'],
      registers: r,
    }),
    eventBytesWritten: new Counter({
      name: 'mcpgw_event_bytes_written_total',
      help: 'Bytes of SSE events written to sockets',
      registers: r,
    }),
    heartbeats: new Counter({
      name: 'mcpgw_heartbeats_total',
      help: 'Heartbeat events written',
      registers: r,
    }),
    resumes: new Counter({
      name: 'mcpgw_resumes_total',
      help: 'SSE connections resumed with Last-Event-ID, by outcome',
      labelNames: ['outcome'],
      registers: r,
    }),
    slowConsumerDisconnects: new Counter({
      name: 'mcpgw_slow_consumer_disconnects_total',
      help: 'Sockets closed because their send queue overflowed',
      registers: r,
    }),
    staleConnectionsRemoved: new Counter({
      name: 'mcpgw_stale_connections_removed_total',
      help: 'Connections removed by the cleanup sweep, by reason',
      labelNames: ['reason'],
      registers: r,
    }),
    commandsEnqueued: new Counter({
      name: 'mcpgw_commands_enqueued_total',
      help: 'Commands accepted by gateways and queued for workers',
      registers: r,
    }),
    commandsRefused: new Counter({
      name: 'mcpgw_commands_refused_total',
      help: 'Commands refused before queueing, by reason (queue_full: 503, inflight_limit: 429)',
      labelNames: ['reason'],
      registers: r,
    }),
    commandsLost: new Counter({
      name: 'mcpgw_commands_lost_total',
      help: 'Commands accepted, then lost by a Redis failover or restart before a worker finished them (their clients got -32012)',
      registers: r,
    }),
    commandsCompleted: new Counter({
      name: 'mcpgw_commands_completed_total',
      help: 'Commands finished by workers, by outcome',
      labelNames: ['outcome'],
      registers: r,
    }),
    commandsDeadLettered: new Counter({
      name: 'mcpgw_commands_dead_lettered_total',
      help: 'Commands moved to the dead-letter queue after too many deliveries',
      registers: r,
    }),
    commandDuration: new Histogram({
      name: 'mcpgw_command_duration_seconds',
      help: 'From enqueue by a gateway to the final result published by a worker',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    commandQueue: new Gauge({
      name: 'mcpgw_command_queue',
      help: 'Commands in the shared queue, by state (waiting, pending, dead_lettered)',
      labelNames: ['state'],
      registers: r,
      async collect() {
        if (!backlogSource) {
          this.reset();
          return;
        }
        try {
          const backlog = await backlogSource();
          this.set({ state: 'waiting' }, backlog.waiting);
          this.set({ state: 'pending' }, backlog.pending);
          this.set({ state: 'dead_lettered' }, backlog.deadLettered);
        } catch {
          // Engine unreachable: drop the series rather than report stale numbers or fail /metrics.
          this.reset();
        }
      },
    }),
    broadcastFanoutDuration: new Histogram({
      name: 'mcpgw_broadcast_fanout_seconds',
      help: 'Time to write one broadcast to every local matching socket',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers: r,
    }),
    redisReconnects: new Counter({
      name: 'mcpgw_redis_reconnects_total',
      help: 'Redis connections re-established',
      registers: r,
    }),
    redisErrors: new Counter({
      name: 'mcpgw_redis_errors_total',
      help: 'Errors reported by Redis connections',
      registers: r,
    }),
    // Per-node health from the Redis engine's probe (engine/redis/nodeHealth.ts), every
    // REDIS_HEALTH_INTERVAL_MS. Labels: the nodes of the one Cluster or Sentinel group only;
    // redis_role, as `role` is the process's (gateway, worker).
    redisNodeUp: new Gauge({
      name: 'mcpgw_redis_node_up',
      help: 'Whether a Redis data node answered PING at the last probe (1) or not (0), by node (host:port), redis_role (master, replica) and shard (Cluster: its hash slots)',
      labelNames: ['node', 'redis_role', 'shard'],
      registers: r,
    }),
    redisNodePing: new Gauge({
      name: 'mcpgw_redis_node_ping_seconds',
      help: 'PING round trip to a Redis data node at the last probe (nodes that answered)',
      labelNames: ['node', 'redis_role', 'shard'],
      registers: r,
    }),
    redisClusterState: new Gauge({
      name: 'mcpgw_redis_cluster_state',
      help: 'Redis Cluster mode: 1 for the cluster_state a node reports (ok or fail), 0 for the other; fail when no node answers',
      labelNames: ['state'],
      registers: r,
    }),
    redisClusterSlots: new Gauge({
      name: 'mcpgw_redis_cluster_slots',
      help: 'Redis Cluster mode: hash slots by state (ok, pfail, fail), as a node reports them',
      labelNames: ['state'],
      registers: r,
    }),
    redisMasterChanges: new Counter({
      name: 'mcpgw_redis_master_changes_total',
      help: 'A shard (Cluster) or the Sentinel group answering from another master than at the previous probe: failovers seen',
      labelNames: ['shard'],
      registers: r,
    }),
    authFailures: new Counter({
      name: 'mcpgw_auth_failures_total',
      help: 'Requests refused for their token (401, or 403 for a missing scope or token type), by reason: missing, malformed, signature, expired, not_before, issuer, audience, claims, scope',
      labelNames: ['reason'],
      registers: r,
    }),
    httpRequests: new Counter({
      name: 'mcpgw_http_requests_total',
      help: 'HTTP requests, by route and status',
      labelNames: ['route', 'method', 'status'],
      registers: r,
    }),
    httpDuration: new Histogram({
      name: 'mcpgw_http_request_duration_seconds',
      help: 'HTTP request duration (for SSE: until headers are sent)',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: r,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** True while the process is ready (what its /ready answers 200 for). */
export type ReadinessCheck = () => boolean;
/** The shared command queue's counts (Engine.commandBacklog). */
export type BacklogSource = () => Promise<{
  waiting: number;
  pending: number;
  deadLettered: number;
}>;

function safely(check: ReadinessCheck): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}
