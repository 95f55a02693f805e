/**
 * deploy/nginx/nginx.conf, the load balancer of docker-compose.yml: `nginx -t` accepts it
 * (a temporary copy whose upstream servers are 127.0.0.1 instead of the compose service
 * names, with a temporary prefix, pid file, error log and temp paths, so it needs no root and
 * touches no system directory), its upstream is exactly the compose gateways, and it carries
 * the settings SSE needs.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../shared/config';
import {
  durationSeconds,
  Json,
  npmScriptCommand,
  readText,
  readYaml,
  requireTool,
  sizeBytes,
} from './helpers';

const CONF = 'deploy/nginx/nginx.conf';

/** The directives of one block (`upstream mcp_gateways`, `location /`), comments removed. */
function block(conf: string, header: string): string {
  const text = conf.replace(/#.*$/gm, '');
  const start = text.indexOf(`${header} {`);
  if (start < 0) throw new Error(`${CONF}: no \`${header} {\` block`);
  let depth = 0;
  for (let i = text.indexOf('{', start); i < text.length; i++) {
    if (text[i] === '{') depth++;
    if (text[i] === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  throw new Error(`${CONF}: unbalanced braces after ${header}`);
}

function directive(body: string, name: string): string[] {
  return [...body.matchAll(new RegExp(`^\\s*${name}\\s+([^;]*);`, 'gm'))].map((m) => m[1].trim());
}

/** Compose services that run the gateway, with the port they listen on. */
function composeGateways(): { name: string; port: number }[] {
  const compose = readYaml('docker-compose.yml');
  const entry = npmScriptCommand('gateway').join(' ');
  return Object.entries<Json>(compose.services)
    .filter(([, s]) => [].concat(s.command ?? []).join(' ') === entry)
    .map(([name, s]) => ({ name, port: Number(s.environment?.PORT ?? 3000) }));
}

function nginxTest(conf: string): { ok: boolean; output: string } {
  const nginx = requireTool(
    'nginx',
    'NGINX',
    'Install nginx (Debian: apt-get install nginx; the service need not run)',
    ['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin'],
  );
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-nginx-'));
  try {
    // Temp paths inside the prefix: the compiled-in ones (/var/lib/nginx/...) need root.
    const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
      .map((t) => `${t}_temp_path ${join(dir, t)};`)
      .join(' ');
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, conf.replace(/^http\s*\{/m, `http {\n    ${temps}`));
    // A file, not a pipe, as stdout and stderr: node's pipes are sockets, which nginx cannot
    // open() as /dev/stdout (the access_log of the container).
    const outFile = join(dir, 'output.txt');
    const out = openSync(outFile, 'w');
    try {
      const r = spawnSync(
        nginx,
        ['-t', '-p', `${dir}/`, '-c', file, '-e', join(dir, 'error.log')].concat([
          '-g',
          `pid ${join(dir, 'nginx.pid')};`,
        ]),
        { stdio: ['ignore', out, out] },
      );
      if (r.error) throw r.error;
      return { ok: r.status === 0, output: readFileSync(outFile, 'utf8') };
    } finally {
      closeSync(out);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The config with every compose gateway replaced by a local address nginx can resolve. */
function withLocalUpstreams(conf: string): string {
  let out = conf;
  composeGateways().forEach((g, i) => {
    out = out.replace(
      new RegExp(`(\\bserver\\s+)${g.name}:${g.port}\\b`, 'g'),
      `$1127.0.0.1:${20000 + i}`,
    );
  });
  return out;
}

describe(`${CONF}`, () => {
  const conf = readText(CONF);

  test('nginx -t accepts it', () => {
    const { ok, output } = nginxTest(withLocalUpstreams(conf));
    expect(output).toContain('test is successful');
    expect(ok).toBe(true);
  });

  test('nginx -t rejects a broken copy (the check is not vacuous)', () => {
    const broken = withLocalUpstreams(conf).replace('proxy_buffering off;', 'proxy_buffering of;');
    expect(nginxTest(broken).ok).toBe(false);
    const unknown = withLocalUpstreams(conf).replace(/^http\s*\{/m, 'http { no_such_directive 1;');
    expect(nginxTest(unknown).ok).toBe(false);
  });

  test('the upstream is exactly the docker-compose gateways', () => {
    const gateways = composeGateways();
    expect(gateways.length).toBeGreaterThanOrEqual(2);
    const servers = directive(block(conf, 'upstream mcp_gateways'), 'server').map(
      (s) => s.split(/\s+/)[0],
    );
    expect(servers.sort()).toEqual(gateways.map((g) => `${g.name}:${g.port}`).sort());
  });

  test('the upstream keeps HTTP/1.1 connections alive', () => {
    const upstream = block(conf, 'upstream mcp_gateways');
    expect(Number(directive(upstream, 'keepalive')[0])).toBeGreaterThan(0);
    // SSE connections last: balance on open connections, not on requests.
    expect(upstream).toMatch(/^\s*least_conn;/m);
  });

  test('location / proxies for SSE: unbuffered, uncached, long timeouts, headers passed', () => {
    const loc = block(conf, 'location /');
    const config = loadConfig({ JWT_SECRET: 'x'.repeat(32) });
    expect(directive(loc, 'proxy_pass')).toEqual(['http://mcp_gateways']);
    expect(directive(loc, 'proxy_http_version')).toEqual(['1.1']);
    expect(directive(loc, 'proxy_buffering')).toEqual(['off']);
    expect(directive(loc, 'proxy_cache')).toEqual(['off']);
    const read = durationSeconds(directive(loc, 'proxy_read_timeout')[0]);
    expect(read).toBeGreaterThanOrEqual(3600);
    expect(read).toBeGreaterThan((3 * config.heartbeatIntervalMs) / 1000);
    const headers = directive(loc, 'proxy_set_header').map((h) => h.split(/\s+/));
    const header = (n: string) => headers.find((h) => h[0].toLowerCase() === n.toLowerCase());
    expect(header('Connection')?.[1]).toBe('""');
    expect(header('X-Forwarded-For')?.[1]).toBe('$proxy_add_x_forwarded_for');
    expect(header('Last-Event-ID')?.[1]).toBe('$http_last_event_id');
    expect(header('Authorization')?.[1]).toBe('$http_authorization');
    // Bodies the gateway accepts reach it; bigger ones get the gateway's JSON 413.
    const server = block(conf, 'server');
    expect(sizeBytes(directive(server, 'client_max_body_size')[0])).toBeGreaterThan(
      config.maxBodyBytes,
    );
  });

  test('it listens on the port docker-compose publishes', () => {
    const lb = Object.values<Json>(readYaml('docker-compose.yml').services).find((s) =>
      (s.volumes ?? []).some((v: string) => v.startsWith(`./${CONF}:`)),
    );
    expect(lb).toBeDefined();
    const listen = directive(block(conf, 'server'), 'listen').map((l) => l.replace(/^.*:/, ''));
    const published = (lb.ports as string[]).map((p) => p.split(':').pop());
    for (const p of published) expect(listen).toContain(p);
  });
});
