import Redis, { type Cluster } from 'ioredis';
import type { TokenType } from '../../shared/types';
import type { ReceivedEvent, SseClient } from './sseClient';

/** What a `tick` broadcast POST got: its status, the event's id (202), or the error body. */
export interface TickBroadcastReply {
  status: number;
  eventId?: string;
  error?: string;
}

/**
 * POSTs a numbered `tick` broadcast to the streams of one token type; status 0 when the
 * request itself failed (the gateway unreachable, or no answer within 15 s).
 */
export async function broadcastTick(
  gatewayUrl: string,
  masterToken: string,
  type: TokenType,
  seq: number,
): Promise<TickBroadcastReply> {
  try {
    const res = await fetch(`${gatewayUrl}/mcp/sse/broadcast`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${masterToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: { type: 'tick', seq }, filter: { tokenTypes: [type] } }),
      signal: AbortSignal.timeout(15_000),
    });
    const body = (await res.json()) as {
      eventIds?: Record<string, string>;
      error?: { code: string; message: string };
    };
    return {
      status: res.status,
      eventId: body.eventIds?.[type],
      error: body.error && `${res.status} ${body.error.code}: ${body.error.message}`,
    };
  } catch {
    return { status: 0 };
  }
}

export const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The sequence numbers of the `tick` broadcasts a stream got, in arrival order. */
export const ticks = (client: Pick<SseClient, 'named'>) =>
  client.named('tick').map((e) => e.json.seq as number);

/** A tool call's final result (progress events carry metadata). */
export const isFinalResult = (e: ReceivedEvent) =>
  e.event === 'tool-result' && e.json.metadata === undefined;

export const historyLost = (client: Pick<SseClient, 'named'>) =>
  client.named('connection-status').filter((e) => e.json.status === 'history-lost');

/** The ports of the masters that own slots now. */
export async function masterPorts(admin: Cluster): Promise<number[]> {
  const ranges = (await admin.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
  return [...new Set(ranges.map((range) => range[2][1]))].sort();
}

/** How many connections hold a shard subscription to `channel`, asked of the node on `port`. */
export async function shardSubscribersOn(port: number, channel: string): Promise<number> {
  const node = new Redis(port, '127.0.0.1');
  try {
    const reply = (await node.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number];
    return Number(reply[1]);
  } finally {
    node.disconnect();
  }
}
