/**
 * The nchan peer: Debian's nginx with libnginx-mod-nchan, storing in a redis-server of its own,
 * one worker process. POST /pub publishes the request body to one channel; GET /sub is an
 * EventSource subscriber of that channel (new messages only). Configuration, pid, logs and
 * temp files live in a temp dir; the master runs in the foreground (`daemon off`) as our child
 * and its worker is adopted, so both are reaped whatever happens.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../devSupport/ports';
import {
  adopt,
  childPids,
  httpStatus,
  reapAdopted,
  rssKb,
  sleep,
  spawnRedis,
  track,
  type Proc,
  type SpawnedRedis,
} from '../procs';
import { postJson } from '../sseStream';
import { publisherAgent, type BroadcastTarget } from '../broadcastTarget';

import { log, type Pid } from '../common';

export const NGINX = '/usr/sbin/nginx';
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';

/** Why nchan cannot run here, or null when it can. */
export function nchanMissing(): string | null {
  if (!existsSync(NGINX)) return `${NGINX} not found (apt-get install nginx)`;
  if (!existsSync(NCHAN_MODULE)) {
    return `${NCHAN_MODULE} not found (apt-get install libnginx-mod-nchan)`;
  }
  return null;
}

/** 'nchan 1.3.6' from the Debian package, or plain 'nchan'. */
export function nchanName(): string {
  try {
    const version = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'libnginx-mod-nchan'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const match = /^(?:\d+:)?(\d+(?:\.\d+)*)/.exec(version.trim());
    return match ? `nchan ${match[1]}` : 'nchan';
  } catch {
    return 'nchan';
  }
}

/**
 * nginx.conf of the peer. Descriptors: one per stream plus a few; the hard limit here is 20,000
 * per process, like the gateway's. Access log off: the gateway logs no request either.
 */
function nginxConf(dir: string, port: number, redisUrl: string): string {
  return `load_module ${NCHAN_MODULE};
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 19900; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream bench_redis { nchan_redis_server "${redisUrl}"; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location = /ready { return 200 "ok\\n"; }
    location = /pub {
      nchan_publisher;
      nchan_channel_id bench;
      nchan_redis_pass bench_redis;
    }
    location = /sub {
      nchan_subscriber eventsource;
      nchan_channel_id bench;
      nchan_redis_pass bench_redis;
      nchan_subscriber_first_message newest;
    }
  }
}
`;
}

/** nginx + nchan + its redis-server, as a broadcast target. Throws when it cannot start. */
export async function startNchan(): Promise<BroadcastTarget> {
  const missing = nchanMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-nchan-'));
  let redis: SpawnedRedis | undefined;
  let master: Proc | undefined;
  try {
    redis = await spawnRedis('redis (nchan)');
    const port = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConf(dir, port, redis.url));
    master = track(
      'nginx master',
      spawn(NGINX, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    let worker: number | undefined;
    for (;;) {
      if (!master.isRunning()) throw new Error(`nginx exited: ${master.output()}`);
      if (worker === undefined) {
        worker = childPids(master.pid)[0];
        if (worker !== undefined) adopt('nginx worker', worker);
      }
      if (worker !== undefined && (await httpStatus(`${url}/ready`)) === 200) break;
      if (Date.now() > deadline) throw new Error(`nginx not ready in 10 s: ${master.output()}`);
      await sleep(50);
    }
    const workerPid: Pid = { pid: worker };
    const nginx = master;
    const holders = { 'nginx worker': workerPid, 'nginx master': nginx };
    const agent = publisherAgent();
    const label = `${nchanName()} (Redis, 1 worker)`;
    log(
      `${label}: nginx master pid ${master.pid}, worker pid ${worker} on ${url}; ` +
        `redis-server pid ${redis.proc.pid}`,
    );
    const ownRedis = redis;
    return {
      label,
      streamUrls: [`${url}/sub`],
      streamHeaders: {},
      publish: async (message) => {
        const r = await postJson(agent, `${url}/pub`, undefined, message);
        return r.status >= 200 && r.status < 300
          ? undefined
          : `HTTP ${r.status} ${JSON.stringify(r.body)}`;
      },
      holders,
      servers: { ...holders, redis: ownRedis.proc },
      // nginx has no garbage collector: what it holds is what it uses.
      holdersRssKb: () => Promise.resolve(rssKb(workerPid.pid) + rssKb(nginx.pid)),
      stop: async () => {
        agent.destroy();
        // SIGQUIT would wait for the streams to end; SIGTERM is nginx's fast shutdown.
        await nginx.stop('SIGTERM', 5000);
        await reapAdopted(3000);
        await ownRedis.proc.stop('SIGTERM', 5000);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await master?.stop('SIGTERM', 5000);
    await reapAdopted(1000);
    await redis?.proc.stop('SIGTERM', 5000);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
