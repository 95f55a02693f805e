/**
 * A server under test in the broadcast scenarios, the project or a peer (nchan): where the load
 * generators open streams, how a broadcast is published, and which processes its CPU and memory
 * are read from. The scenario measures every target the same way.
 */
import http from 'node:http';
import path from 'node:path';
import { issueToken, spawnRedis, spawnRole, type Proc, type SpawnedRole } from './procs';
import { postJson } from './sseStream';
import type { BenchMessage, Publish } from './loadgens';

import { DIST_BENCH, log, profileArgs, rssAfterGc, serverEnv, type Pid } from './common';

export interface BroadcastTarget {
  /** Who this is, for the table (e.g. 'nchan 1.3.6 (Redis, 1 worker)'). */
  label: string;
  /** Stream URLs; the load generators spread their streams over them. */
  streamUrls: string[];
  /** Headers of every stream GET. */
  streamHeaders: Record<string, string>;
  publish: Publish;
  /** The processes that hold the streams (gateways; nginx master + worker): memory per stream. */
  holders: Record<string, Pid>;
  /** Every server process (holders and Redis): server CPU and total RSS. */
  servers: Record<string, Pid>;
  /** Resident memory of the holders in KB, after a full GC where there is one. */
  holdersRssKb(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * POST /mcp/sse/broadcast of a bench message to the team token type only (which every bench
 * subscriber has: one topic, like one nchan channel); resolves to a failure text, or undefined.
 */
export async function publishBroadcast(
  agent: http.Agent,
  gatewayUrl: string,
  masterToken: string,
  message: BenchMessage,
): Promise<string | undefined> {
  const r = await postJson(agent, `${gatewayUrl}/mcp/sse/broadcast`, masterToken, {
    message,
    filter: { tokenTypes: ['team'] },
  });
  return r.status === 202 ? undefined : `HTTP ${r.status} ${JSON.stringify(r.body)}`;
}

/** An agent for a publisher's POSTs (kept alive, like a real publisher's). */
export function publisherAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 8 });
}

/**
 * The project: `gateways` gateway processes and one redis-server. Streams are split over the
 * gateways; broadcasts are POSTed to each gateway in turn (Redis carries them to every pod),
 * to the team token type only: one topic, like one nchan channel.
 */
export async function startProject(
  secret: string,
  gateways: number,
  profileName: string,
  /** Gateway settings under test (e.g. SSE_BATCH_MS, SSE_COMPRESSION) and stream headers. */
  variant: { env?: Record<string, string>; streamHeaders?: Record<string, string> } = {},
): Promise<BroadcastTarget> {
  const redis = await spawnRedis('redis (project)');
  // --expose-gc + a SIGUSR2 handler: memory is read after a full GC (bench/gcOnSignal.ts).
  const nodeArgs = ['--expose-gc', '-r', path.join(DIST_BENCH, 'gcOnSignal.js')];
  let pods: SpawnedRole[];
  try {
    pods = await Promise.all(
      Array.from({ length: gateways }, (_, i) =>
        spawnRole(
          `gateway-${i + 1}`,
          'gateway',
          { ...serverEnv(redis.url, secret), POD_ID: `bench-gateway-${i + 1}`, ...variant.env },
          [...nodeArgs, ...profileArgs(`${profileName}-gateway-${i + 1}`)],
        ),
      ),
    );
  } catch (err) {
    await redis.proc.stop('SIGTERM', 5000);
    throw err;
  }
  const team = issueToken(secret, 'team', 'bench-subscriber');
  const master = issueToken(secret, 'master', 'bench-broadcaster');
  log(
    `project: gateways ${pods.map((p) => `pid ${p.proc.pid} ${p.url}`).join(', ')}; ` +
      `redis-server pid ${redis.proc.pid}`,
  );
  const agent = publisherAgent();
  let turn = 0;
  const holders: Record<string, Proc> = Object.fromEntries(pods.map((p) => [p.proc.name, p.proc]));
  return {
    label: `project (${gateways} gateway${gateways > 1 ? 's' : ''} + Redis)`,
    streamUrls: pods.map((p) => `${p.url}/mcp/sse`),
    streamHeaders: { ...variant.streamHeaders, Authorization: `Bearer ${team}` },
    publish: (message) => publishBroadcast(agent, pods[turn++ % pods.length].url, master, message),
    holders,
    servers: { ...holders, redis: redis.proc },
    holdersRssKb: async () => {
      let total = 0;
      for (const p of pods) total += await rssAfterGc(p.proc);
      return total;
    },
    stop: async () => {
      agent.destroy();
      await Promise.all(pods.map((p) => p.proc.stop('SIGTERM', 10_000)));
      await redis.proc.stop('SIGTERM', 5000);
    },
  };
}
