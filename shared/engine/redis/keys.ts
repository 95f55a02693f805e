/**
 * Every Redis key and channel the engine uses, in one place. All start with the deployment's
 * prefix, so several deployments (or tests) share one Redis without seeing each other.
 *
 *   <prefix>h:<topic>        stream  event history of a topic (capped, PEXPIRE refreshed on publish)
 *   <prefix>hm:<topic>       hash    beside it, same TTL: its byte count (b), its TTL cap (t)
 *   <prefix>ev:<topic>       channel live events of a topic (pub/sub, not a key)
 *   <prefix>cmd              stream  command queue, partition 0, consumer group `workers` (acked
 *                                    entries deleted; never trimmed)
 *   <prefix>cmd:<i>          stream  partition i >= 1 of the queue (COMMAND_PARTITIONS), its own group
 *   <prefix>cmd:dead         stream  dead-lettered commands of partition 0 (capped)
 *   <prefix>cmd:<i>:dead     stream  dead-lettered commands of partition i
 *   <prefix>cmd:partitions   set     every COMMAND_PARTITIONS > 1 ever used here, so workers with
 *                                    fewer partitions still drain the others (no expiry)
 *   <prefix>inflight:<sub>   zset    requestIds of a token's commands queued or running, scored
 *                                    by when they stop counting (PX = that lease); one per token
 *                                    whatever its partition
 *   <prefix>done:<requestId> string  request already applied (PX = history TTL)
 *   <prefix>conns            hash    connectionId -> ConnectionRecord JSON (PEXPIRE refreshed)
 *   <prefix>conns:seen       zset    open connectionId scored by last-seen ms (PEXPIRE refreshed)
 *   <prefix>conns:closed     zset    resumable connectionId scored by closed-at ms (PEXPIRE refreshed)
 *   <prefix>conns:subs       hash    token sub -> open streams (PEXPIRE refreshed)
 *   <prefix>store:<name>     hash    durable documents of a collection (the backlog; no expiry)
 *   <prefix>kv:<key>         string  short-lived values: MCP sessions, stream locks (PX TTL)
 *   <prefix>rl:<key>         string  rate-limit hits of the current window (PX = the window)
 *   <prefix>set:<key>        set     small sets with a TTL: an MCP session's resource subscriptions
 *
 * On a Redis Cluster (`hashTags`) every script and pipeline must keep its keys in one hash slot,
 * so the keys that scripts use together carry the same hash tag (`{...}`), while unrelated
 * owners get different tags and spread over the shards:
 *   - a topic's history, meta and shard channel: `{t:<topic>}` (publishEvent, capHistory); one
 *     slot per topic.
 *   - a command partition's stream, its dead letters and the in-flight sets of its tokens:
 *     `{cmd}` for partition 0 (`{cmd}`, `{cmd}:dead`, `{cmd}inflight:<sub>`), `{cmd:<i>}` for
 *     partition i (`{cmd:<i>}`, `{cmd:<i>}:dead`, `{cmd:<i>}inflight:<sub>`): enqueue, ack and
 *     dead-letter scripts touch them together, and the per-token admission count must be atomic
 *     with the XADD. A token's commands all go to one partition (a hash of its sub), so its
 *     in-flight set is in that partition's slot. The partitions record is `{cmd}:partitions`.
 *   - the four registry keys: `{conns}` (register/release/touch/sweep update them together).
 *   - single-key values (documents, kv, counters, sets, done-keys) need no tag: each key
 *     hashes on its own name and so spreads by itself.
 * A single Redis keeps the names above unchanged (no migration for existing deployments).
 */
export interface RedisKeys {
  readonly prefix: string;
  /** Cluster layout: keys that scripts use together share a hash tag. */
  readonly hashTags: boolean;
  history(topic: string): string;
  historyMeta(topic: string): string;
  channel(topic: string): string;
  /** The topic a channel of channel() carries. */
  topicOfChannel(channel: string): string;
  /** Partition `index` of the command queue (index 0: the names of a single-stream queue). */
  commandPartition(index: number): CommandPartitionKeys;
  /** Set of every partition count (> 1) used with this prefix. */
  readonly commandPartitionCounts: string;
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

/** One partition of the command queue: its stream, dead letters and in-flight sets. */
export interface CommandPartitionKeys {
  readonly index: number;
  readonly commands: string;
  readonly deadLetters: string;
  /** Prefix of the in-flight sets; the set of a token is this + its sub. */
  readonly inFlightPrefix: string;
  inFlight(sub: string): string;
}

/** The consumer group every worker joins (on each partition). */
export const COMMAND_GROUP = 'workers';

export interface KeyLayoutOptions {
  /** Hash tags that keep each script's keys in one Cluster slot (see above). */
  hashTags?: boolean;
}

export function redisKeys(prefix: string, options: KeyLayoutOptions = {}): RedisKeys {
  // A `}` in a topic ends its tag early, but both keys of the topic end it alike. A prefix with
  // a `{...}` of its own tags every key alike: one slot, still correct, just not spread.
  const topicKey = options.hashTags
    ? (kind: string, topic: string) => `${prefix}${kind}:{t:${topic}}`
    : (kind: string, topic: string) => `${prefix}${kind}:${topic}`;
  const queue = options.hashTags ? `${prefix}{cmd}` : `${prefix}cmd`;
  const commandPartition = (index: number): CommandPartitionKeys => {
    const tag = index === 0 ? 'cmd' : `cmd:${index}`;
    const commands = options.hashTags ? `${prefix}{${tag}}` : `${prefix}${tag}`;
    // A single Redis needs no slot: one in-flight set per token, counted whatever partition
    // its commands are in (also across a change of COMMAND_PARTITIONS).
    const inFlightPrefix = options.hashTags ? `${commands}inflight:` : `${prefix}inflight:`;
    return {
      index,
      commands,
      deadLetters: `${commands}:dead`,
      inFlightPrefix,
      inFlight: (sub) => `${inFlightPrefix}${sub}`,
    };
  };
  const registry = options.hashTags ? `${prefix}{conns}` : `${prefix}conns`;
  return {
    prefix,
    hashTags: options.hashTags === true,
    history: (topic) => topicKey('h', topic),
    historyMeta: (topic) => topicKey('hm', topic),
    // On a Cluster a topic's channel is a shard channel of the topic's slot (SPUBLISH from its
    // publish script, SSUBSCRIBE on the slot's master): same tag as its history.
    channel: (topic) => topicKey('ev', topic),
    topicOfChannel: options.hashTags
      ? (channel) => channel.slice(`${prefix}ev:{t:`.length, -1)
      : (channel) => channel.slice(`${prefix}ev:`.length),
    commandPartition,
    commandPartitionCounts: `${queue}:partitions`,
    processed: (requestId) => `${prefix}done:${requestId}`,
    connections: registry,
    connectionsSeen: `${registry}:seen`,
    connectionsClosed: `${registry}:closed`,
    connectionsBySub: `${registry}:subs`,
    collection: (name) => `${prefix}store:${name}`,
    value: (key) => `${prefix}kv:${key}`,
    counter: (key) => `${prefix}rl:${key}`,
    memberSet: (key) => `${prefix}set:${key}`,
  };
}
