/**
 * Every Redis key and channel the engine uses, in one place. All start with the deployment's
 * prefix, so several deployments (or tests) share one Redis without seeing each other.
 *
 *   <prefix>h:<topic>        stream  event history of a topic (capped, PEXPIRE refreshed on publish)
 *   <prefix>hm:<topic>       hash    beside it, same TTL: its byte count (b), its TTL cap (t)
 *   <prefix>ev:<topic>       channel live events of a topic (pub/sub, not a key)
 *   <prefix>cmd              stream  command queue, consumer group `workers` (acked entries deleted; never trimmed)
 *   <prefix>cmd:dead         stream  dead-lettered commands (capped)
 *   <prefix>inflight:<sub>   zset    requestIds of a token's commands queued or running, scored
 *                                    by when they stop counting (PX = that lease)
 *   <prefix>done:<requestId> string  request already applied (PX = history TTL)
 *   <prefix>conns            hash    connectionId -> ConnectionRecord JSON (PEXPIRE refreshed)
 *   <prefix>conns:seen       zset    open connectionId scored by last-seen ms (PEXPIRE refreshed)
 *   <prefix>conns:closed     zset    resumable connectionId scored by closed-at ms (PEXPIRE refreshed)
 *   <prefix>conns:subs       hash    token sub -> open streams (PEXPIRE refreshed)
 *   <prefix>store:<name>     hash    durable documents of a collection (the backlog; no expiry)
 *   <prefix>kv:<key>         string  short-lived values: MCP sessions, stream locks (PX TTL)
 *   <prefix>rl:<key>         string  rate-limit hits of the current window (PX = the window)
 *   <prefix>set:<key>        set     small sets with a TTL: an MCP session's resource subscriptions
 */
export interface RedisKeys {
  readonly prefix: string;
  history(topic: string): string;
  historyMeta(topic: string): string;
  channel(topic: string): string;
  readonly commands: string;
  readonly deadLetters: string;
  /** Prefix of the in-flight sets; the set of a token is this + its sub. */
  readonly inFlightPrefix: string;
  inFlight(sub: string): string;
  processed(requestId: string): string;
  readonly connections: string;
  readonly connectionsSeen: string;
  readonly connectionsClosed: string;
  readonly connectionsBySub: string;
  collection(name: string): string;
  value(key: string): string;
  counter(key: string): string;
  memberSet(key: string): string;
}

/** The consumer group every worker joins. */
export const COMMAND_GROUP = 'workers';

export function redisKeys(prefix: string): RedisKeys {
  return {
    prefix,
    history: (topic) => `${prefix}h:${topic}`,
    historyMeta: (topic) => `${prefix}hm:${topic}`,
    channel: (topic) => `${prefix}ev:${topic}`,
    commands: `${prefix}cmd`,
    deadLetters: `${prefix}cmd:dead`,
    inFlightPrefix: `${prefix}inflight:`,
    inFlight: (sub) => `${prefix}inflight:${sub}`,
    processed: (requestId) => `${prefix}done:${requestId}`,
    connections: `${prefix}conns`,
    connectionsSeen: `${prefix}conns:seen`,
    connectionsClosed: `${prefix}conns:closed`,
    connectionsBySub: `${prefix}conns:subs`,
    collection: (name) => `${prefix}store:${name}`,
    value: (key) => `${prefix}kv:${key}`,
    counter: (key) => `${prefix}rl:${key}`,
    memberSet: (key) => `${prefix}set:${key}`,
  };
}
