import { engineErrors } from '../../errors';
import { exceedsBytes, truncate } from '../../text';
import type { EngineEvent, HistoryPage } from '../engine';
import { ZERO_EVENT_ID, compareEventIds, isEventId } from '../eventId';
import type { RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/**
 * Cluster only: how long the second step of a two-step publish (the done-key, the copy to a
 * reply channel) is tried again while its shard fails over. The event is out by then: giving up
 * early would leave the command to be run again (a second result) or its copy undelivered.
 * A shard's failover takes a few seconds (cluster-node-timeout plus the election).
 */
const SECOND_STEP_RETRY_MS = 30_000;
const SECOND_STEP_DELAY_MS = 250;

/** Raw XRANGE entry: [id, [field, value, ...]]. The history stream writes e=<event>, d=<data>. */
type StreamEntry = [string, string[] | null];

/**
 * Events of a topic: a history stream plus a pub/sub channel, written by one script.
 *
 * The stream is trimmed in steps (every `slack` publishes, see publishEvent.lua), and read as
 * if it held exactly `maxLen` events (readHistory.lua), so readers see the same exact cap as
 * with the memory engine while most publishes skip the trimming work.
 */
export class EventLog {
  private readonly trimSlack: number;

  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
    private readonly maxLen: number,
    private readonly ttlMs: number,
    private readonly maxBytes: number,
    private readonly eventMaxBytes: number,
  ) {
    // Up to 100 extra entries (at most doubling a short history) between trims.
    this.trimSlack = Math.max(1, Math.min(100, maxLen));
  }

  /**
   * `processedKey`: a request's done-key to set in the same script (see publishEvent.lua).
   * `historyTtlMs`: this topic's history lifetime, instead of the engine's (see ARGV[8]).
   * `copyTo`: a topic whose subscribers get the event too (see PublishOptions.copyTo).
   */
  publish(
    topic: string,
    event: string,
    data: string,
    processedKey?: string,
    historyTtlMs?: number,
    copyTo?: string,
  ): Promise<string> {
    // The live payload is newline-separated; a newline in the name would shift the fields.
    if (event.includes('\n')) {
      return Promise.reject(engineErrors.invalidArgument('Event names cannot contain newlines'));
    }
    const copy = copyTo !== undefined && copyTo !== topic;
    // A copy carries the topic's name the same way.
    if (copy && topic.includes('\n')) {
      return Promise.reject(
        engineErrors.invalidArgument('A topic whose events are copied cannot contain newlines'),
      );
    }
    const bytes = exceedsBytes(data, this.eventMaxBytes);
    if (bytes !== undefined)
      return Promise.reject(engineErrors.eventTooLarge(bytes, this.eventMaxBytes));
    // On a Cluster the done-key hashes to another slot than the topic, so the script cannot set
    // it: it is set right after the publish instead (see publishThenMarkProcessed).
    if (processedKey && this.keys.hashTags) {
      return this.publishThenMarkProcessed(topic, event, data, processedKey, historyTtlMs, copyTo);
    }
    if (copy && this.keys.hashTags) {
      return this.publishThenCopy(topic, event, data, processedKey, historyTtlMs, copyTo);
    }
    const history = this.keys.history(topic);
    const meta = this.keys.historyMeta(topic);
    const keys: [string, ...string[]] = processedKey
      ? [history, meta, processedKey]
      : [history, meta];
    return this.redis.publishEvent(
      keys.length,
      ...keys,
      this.keys.channel(topic),
      event,
      data,
      this.maxLen,
      this.trimSlack,
      this.ttlMs,
      this.maxBytes,
      historyTtlMs !== undefined ? Math.max(1, Math.round(historyTtlMs)) : '',
      this.keys.hashTags ? 'SPUBLISH' : 'PUBLISH',
      ...(copy && !this.keys.hashTags ? [this.keys.channel(copyTo), topic] : []),
    );
  }

  /**
   * Cluster only: the event, then its request's done-key (tried again while the key's shard
   * fails over). A worker killed between the two leaves the command unmarked: its redelivery
   * runs it again and publishes the result twice (README, Redis Cluster). The window is one
   * round trip, like the one between a handler's effect and its publish that exists on a
   * single Redis too.
   */
  private async publishThenMarkProcessed(
    topic: string,
    event: string,
    data: string,
    processedKey: string,
    historyTtlMs?: number,
    copyTo?: string,
  ): Promise<string> {
    const id = await this.publish(topic, event, data, undefined, historyTtlMs, copyTo);
    await secondStep(() => this.redis.set(processedKey, '1', 'PX', this.ttlMs));
    return id;
  }

  /**
   * Cluster only: the copy's channel is in the other topic's slot, so it is published after
   * the script, in the same payload form ("\n<topic>\n<id>\n<event>\n<data>"). Copies of one
   * topic keep their order when its publisher awaits each publish (one request's stream does).
   */
  private async publishThenCopy(
    topic: string,
    event: string,
    data: string,
    processedKey: string | undefined,
    historyTtlMs: number | undefined,
    copyTo: string,
  ): Promise<string> {
    const id = await this.publish(topic, event, data, processedKey, historyTtlMs);
    const copy = `\n${topic}\n${id}\n${event}\n${data}`;
    await secondStep(() => this.redis.spublish(this.keys.channel(copyTo), copy));
    return id;
  }

  /** See Engine.capHistoryTtl. */
  async capTtl(topic: string, capMs?: number): Promise<void> {
    await this.redis.capHistory(
      this.keys.history(topic),
      this.keys.historyMeta(topic),
      capMs === undefined ? '' : String(Math.max(1, Math.round(capMs))),
      this.ttlMs,
    );
  }

  async readHistory(topic: string, afterId: string, limit: number): Promise<HistoryPage> {
    if (!isEventId(afterId))
      throw engineErrors.invalidArgument(`Invalid event id: ${truncate(afterId)}`);
    const count = Math.max(0, Math.floor(limit));
    const reply = await this.redis.readHistory(
      this.keys.history(topic),
      afterId,
      count,
      this.maxLen,
    );
    if (reply[0] === 0) {
      // No stream (never written, or expired): a reader who had seen some of it lost the rest.
      return { events: [], truncated: compareEventIds(afterId, ZERO_EVENT_ID) > 0 };
    }
    const maxDeletedId = reply[1] as string;
    const entries = reply[2] as StreamEntry[];
    const events: EngineEvent[] = [];
    for (const [id, fields] of entries) {
      if (fields) events.push(toEvent(topic, id, fields));
    }
    // Retention dropped events after afterId, or the store lost the event at afterId itself.
    const gone = reply[3] === 1;
    return { events, truncated: gone || compareEventIds(afterId, maxDeletedId) < 0 };
  }

  async lastEventId(topic: string): Promise<string> {
    const key = this.keys.history(topic);
    const newest = (await this.redis.xrevrange(key, '+', '-', 'COUNT', 1)) as StreamEntry[];
    if (newest.length > 0) return newest[0][0];
    if (this.maxLen > 0) return ZERO_EVENT_ID;
    // historyMaxLen 0 keeps no events, but the stream still knows the last id it gave out.
    try {
      const info = (await this.redis.xinfo('STREAM', key)) as unknown[];
      return String(info[info.indexOf('last-generated-id') + 1]);
    } catch {
      return ZERO_EVENT_ID; // no such stream
    }
  }
}

function toEvent(topic: string, id: string, fields: string[]): EngineEvent {
  let event = '';
  let data = '';
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 'e') event = fields[i + 1];
    else if (fields[i] === 'd') data = fields[i + 1];
  }
  return Object.freeze({ topic, id, event, data });
}

/** Runs the second step of a Cluster publish, again while it fails, for SECOND_STEP_RETRY_MS. */
async function secondStep(step: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + SECOND_STEP_RETRY_MS;
  for (;;) {
    try {
      await step();
      return;
    } catch (error) {
      if (Date.now() + SECOND_STEP_DELAY_MS > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, SECOND_STEP_DELAY_MS));
    }
  }
}
