/**
 * `make soak`: ordinary traffic for a while, Redis memory sampled as it goes. Long-lived streams
 * get broadcasts; short connections each create a project, list projects once and close. Before
 * the per-connection history went with the resume window, Redis grew without end under this
 * load (closed connections' histories stayed an hour); now it levels off once the first windows
 * roll over and stays flat. Prints one line per sample (used_memory, and MEMORY USAGE of the keys
 * by kind) and how the event histories changed over the second half.
 *
 * Env: SOAK_SECONDS (180), SOAK_STREAMS (300), SOAK_BROADCAST_RATE (5/s), SOAK_CONNECT_RATE
 * (10/s), SOAK_RESUME_GRACE_MS (20000), SOAK_SAMPLE_MS (10000).
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { issueToken, reapAll, sleep, spawnRedis, spawnRole } from './procs';
import { openSseStream, postJson, type SseStream } from './sseStream';

const num = (name: string, def: number) => Number(process.env[name] ?? def);
const SECONDS = num('SOAK_SECONDS', 180);
const STREAMS = num('SOAK_STREAMS', 300);
const BROADCAST_RATE = num('SOAK_BROADCAST_RATE', 5);
const CONNECT_RATE = num('SOAK_CONNECT_RATE', 10);
const RESUME_GRACE_MS = num('SOAK_RESUME_GRACE_MS', 20_000);
const SAMPLE_MS = num('SOAK_SAMPLE_MS', 10_000);

/** Memory of the keys under the prefix, by kind (`h`, `hm`, `done`, `store`, ...), in bytes. */
async function memoryByKind(redis: Redis, prefix: string): Promise<Map<string, number>> {
  const byKind = new Map<string, number>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    const pipeline = redis.pipeline();
    for (const key of keys) pipeline.memory('USAGE', key, 'SAMPLES', 0);
    const sizes = (await pipeline.exec()) ?? [];
    keys.forEach((key, i) => {
      const kind = key.slice(prefix.length).split(':')[0];
      byKind.set(kind, (byKind.get(kind) ?? 0) + (Number(sizes[i]?.[1]) || 0));
    });
  } while (cursor !== '0');
  return byKind;
}

async function main(): Promise<void> {
  const secret = randomBytes(24).toString('hex');
  const redis = await spawnRedis('soak-redis');
  const env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: 'soak:',
    JWT_SECRET: secret,
    LOG_LEVEL: 'warn',
    RESUME_GRACE_MS: String(RESUME_GRACE_MS),
    CLEANUP_INTERVAL_MS: String(Math.max(1000, Math.floor(RESUME_GRACE_MS / 4))),
    RATE_LIMIT_MAX: '1000000',
    MAX_CONNECTIONS_PER_TOKEN: String(STREAMS + 100),
    MAX_PROJECTS_PER_TOKEN: '1000000',
  };
  const admin = new Redis(redis.url);
  const gateway = await spawnRole('soak-gateway', 'gateway', env);
  await spawnRole('soak-worker', 'worker', env);
  const master = issueToken(secret, 'master', 'soak-master');
  const team = issueToken(secret, 'team', 'soak-team');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const longLived: SseStream[] = [];
  let delivered = 0;
  for (let i = 0; i < STREAMS; i++) {
    longLived.push(await openSseStream(gateway.url, team, () => delivered++));
  }

  /** One short connection: create a project, list projects, close. */
  const shortConnection = async (n: number) => {
    const results: string[] = [];
    let done: () => void = () => undefined;
    const finished = new Promise<void>((r) => (done = r));
    const stream = await openSseStream(gateway.url, team, (event, data) => {
      if (event === 'tool-result' && !data.includes('"progress"')) results.push(data);
      if (results.length === 2) done();
    });
    const send = (name: string, args: Record<string, unknown>) =>
      postJson(agent, `${gateway.url}/mcp/sse/send`, team, {
        connectionId: stream.connectionId,
        message: { method: 'tools/call', params: { name, arguments: args } },
      });
    await send('create_project', { name: `soak ${n}`, description: 'x'.repeat(200) });
    await send('list_projects', {});
    await Promise.race([finished, sleep(10_000)]);
    stream.close();
  };

  const stopAt = Date.now() + SECONDS * 1000;
  // What grows with time besides the backlog's own documents (which a user keeps on purpose).
  const samples: { s: number; bytes: number }[] = [];
  const started = Date.now();
  const mb = (bytes: number) => (bytes / 1e6).toFixed(2);
  let sampling = Promise.resolve();
  const sampler = setInterval(() => {
    sampling = sampling.then(async () => {
      const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
      const byKind = await memoryByKind(admin, env.REDIS_PREFIX);
      const s = Math.round((Date.now() - started) / 1000);
      // Per-connection and per-topic state: what must level off once the windows roll over.
      samples.push({ s, bytes: (byKind.get('h') ?? 0) + (byKind.get('hm') ?? 0) });
      const kinds = [...byKind].map(([kind, bytes]) => `${kind} ${mb(bytes)}`).join(', ');
      console.log(
        `t=${s}s used_memory ${mb(used)} MB; keys by kind (MB): ${kinds}; ${delivered} deliveries`,
      );
    });
  }, SAMPLE_MS);

  const broadcasting = (async () => {
    for (let i = 0; Date.now() < stopAt; i++) {
      await postJson(agent, `${gateway.url}/mcp/sse/broadcast`, master, {
        message: { type: 'mcp-notification', seq: i },
      });
      await sleep(1000 / BROADCAST_RATE);
    }
  })();
  const connecting = (async () => {
    const running = new Set<Promise<void>>();
    for (let n = 0; Date.now() < stopAt; n++) {
      const p = shortConnection(n).catch((err: unknown) => console.error(String(err)));
      running.add(p);
      void p.finally(() => running.delete(p));
      await sleep(1000 / CONNECT_RATE);
    }
    await Promise.all(running);
  })();
  await Promise.all([broadcasting, connecting]);
  clearInterval(sampler);
  await sampling;

  const half = samples.filter((x) => x.s >= SECONDS / 2);
  if (half.length >= 2) {
    const growth = half[half.length - 1].bytes - half[0].bytes;
    console.log(
      `second half, event histories (h: and hm: keys): ${mb(half[0].bytes)} -> ` +
        `${mb(half[half.length - 1].bytes)} MB (${mb(growth)} MB over ${half[half.length - 1].s - half[0].s} s)`,
    );
  }
  for (const s of longLived) s.close();
  agent.destroy();
  admin.disconnect();
  await reapAll();
}

main().catch(async (err: unknown) => {
  console.error(err);
  await reapAll();
  process.exit(1);
});
