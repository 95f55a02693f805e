/**
 * deploy/k8s, offline: `kubectl kustomize` builds the base, the monitoring component and every
 * overlay; every object validates against the Kubernetes and Prometheus Operator schemas of
 * the kubernetes-models packages, and carries no field those APIs do not know; the objects
 * agree with each other and with the code (probes, drain timing, ports, settings, secrets,
 * autoscaling, disruption budgets, scraping, alert rules, dashboard).
 */
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import * as ts from 'typescript';
import { loadConfig } from '../../../shared/config';
import {
  configEnvNames,
  cpuCores,
  durationSeconds,
  Json,
  npmScriptCommand,
  parseYamlStream,
  readText,
  readYaml,
  repoPath,
  requireTool,
  ROOT,
  run,
  sizeBytes,
} from './helpers';

const OVERLAYS = readdirSync(repoPath('deploy/k8s/overlays'));
const BUILDS = ['base', 'monitoring', ...OVERLAYS.map((o) => `overlays/${o}`)];
/** Seconds a pod keeps after preStop and the socket drain, to finish work and quit Redis. */
const SHUTDOWN_MARGIN_S = 10;
const SECRET_KEYS = ['REDIS_URL', 'JWT_SECRET'];

let kubectl: string | undefined;
const builds = new Map<string, Json[]>();

function build(dir: string): Json[] {
  const cached = builds.get(dir);
  if (cached) return cached;
  kubectl ??= requireTool(
    'kubectl',
    'KUBECTL',
    'Install kubectl (Debian: apt-get install kubernetes-client)',
  );
  const r = run(kubectl, ['kustomize', repoPath('deploy/k8s', dir)]);
  if (r.status !== 0) throw new Error(`kubectl kustomize deploy/k8s/${dir} failed:\n${r.stderr}`);
  const objects = parseYamlStream(r.stdout, `kustomize output of deploy/k8s/${dir}`);
  builds.set(dir, objects);
  return objects;
}

const id = (o: Json) => `${o?.kind ?? '?'}/${o?.metadata?.name ?? '?'}`;
const ofKind = (objs: Json[], kind: string) => objs.filter((o) => o.kind === kind);
function named(objs: Json[], kind: string, name: string): Json {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} named ${name} in the build`);
  return o;
}
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

// ---- schema validation -------------------------------------------------------------------

/** kubernetes-models' validate(), in a node child process (the packages are ES modules). */
function validateWithModels(objects: Json[]): string[] {
  const child = spawnSync(
    process.execPath,
    [repoPath('test/integration/ops/validate-k8s-models.mjs')],
    { cwd: ROOT, input: JSON.stringify(objects), encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  if (child.status !== 0) throw new Error(`model validation crashed:\n${child.stderr}`);
  const results: { ok: boolean; error?: string }[] = JSON.parse(child.stdout);
  return results.flatMap((res, i) => (res.ok ? [] : [`${id(objects[i])}: ${res.error}`]));
}

/** The TypeScript declaration of an object's kind, from the kubernetes-models packages. */
function declarationOf(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const base =
    group === 'monitoring.coreos.com'
      ? '@kubernetes-models/prometheus-operator/monitoring.coreos.com'
      : group
        ? `kubernetes-models/${group}`
        : 'kubernetes-models';
  return `${base}/${version}/${kind}`;
}

/**
 * Unknown fields (a typo such as `readinesProbe`) pass the models' JSON schemas, which allow
 * additional properties, but the API server rejects or drops them. TypeScript's excess
 * property check over the models' declarations catches them: every object becomes a typed
 * object literal, and the compiler reports each property its type does not have.
 */
function unknownFieldErrors(buildsToCheck: Map<string, Json[]>): Map<string, string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgw-k8s-types-'));
  try {
    const lines: string[] = [];
    const owners: { build: string; object: string; from: number; to: number }[] = [];
    let n = 0;
    for (const [name, objects] of buildsToCheck) {
      for (const o of objects) {
        const from = lines.length;
        lines.push(
          `import type { I${o.kind} as T${n} } from '${declarationOf(o.apiVersion, o.kind)}';`,
        );
        lines.push(...`export const o${n}: T${n} = ${JSON.stringify(o, null, 1)};`.split('\n'));
        owners.push({ build: name, object: id(o), from, to: lines.length });
        n++;
      }
    }
    const file = join(dir, 'objects.ts');
    writeFileSync(file, lines.join('\n'));
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      // The file is outside the repository: resolve packages from its node_modules.
      baseUrl: ROOT,
      paths: { '*': ['node_modules/*'] },
      types: [],
    });
    const out = new Map<string, string[]>([...buildsToCheck.keys()].map((k) => [k, []]));
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (!d.file || d.start === undefined) throw new Error(`type check: ${text}`);
      const line = d.file.getLineAndCharacterOfPosition(d.start).line;
      const owner = owners.find((o) => line >= o.from && line < o.to);
      if (!owner) throw new Error(`type check: ${text}`);
      const lineText = lines[line].trim();
      out.get(owner.build)!.push(`${owner.object}: ${text.split('\n').pop()} (near ${lineText})`);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Kubernetes manifests (deploy/k8s)', () => {
  let typeErrors: Map<string, string[]>;
  const typeErrorsFor = (dir: string) => {
    typeErrors ??= unknownFieldErrors(new Map(BUILDS.map((b) => [b, build(b)])));
    return typeErrors.get(dir)!;
  };

  test('there is a production overlay', () => {
    expect(OVERLAYS).toContain('production');
  });

  describe.each(BUILDS)('kubectl kustomize deploy/k8s/%s', (dir) => {
    test('builds', () => {
      const objects = build(dir);
      expect(objects.length).toBeGreaterThan(0);
      for (const o of objects) {
        expect(typeof o.apiVersion).toBe('string');
        expect(typeof o.kind).toBe('string');
        expect(typeof o.metadata?.name).toBe('string');
      }
    });

    test('every object validates against the Kubernetes / Prometheus Operator schemas', () => {
      expect(validateWithModels(build(dir))).toEqual([]);
    });

    test('every field is one the API knows', () => {
      expect(typeErrorsFor(dir)).toEqual([]);
    });
  });

  test('the model validation rejects a broken object (the check is not vacuous)', () => {
    const broken = structuredClone(named(build('base'), 'Deployment', 'mcp-gateway'));
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'three thousand';
    expect(validateWithModels([broken])).toHaveLength(1);
    const typo = structuredClone(named(build('base'), 'Service', 'mcp-gateway'));
    typo.spec.selectr = typo.spec.selector;
    expect(unknownFieldErrors(new Map([['typo', [typo]]])).get('typo')).toHaveLength(1);
  });

  describe.each(OVERLAYS)('overlay %s is consistent', (overlay) => {
    const objects = () => build(`overlays/${overlay}`);
    const production = overlay === 'production';

    /** The gateway and worker Deployments, found by the entry point their container runs. */
    function app(role: 'gateway' | 'worker') {
      const entry = npmScriptCommand(role);
      const found = ofKind(objects(), 'Deployment').flatMap((d) =>
        (d.spec.template.spec.containers as Json[])
          .filter((c) => isDeepStrictEqual([...(c.command ?? []), ...(c.args ?? [])], entry))
          .map((c) => ({ deployment: d, pod: d.spec.template.spec, container: c })),
      );
      if (found.length !== 1) {
        throw new Error(
          `expected one Deployment whose container runs \`${entry.join(' ')}\` ` +
            `(package.json "${role}" script), found ${found.length}`,
        );
      }
      return found[0];
    }

    /** The environment a container starts with: ConfigMaps, then literal values and secrets. */
    function environment(container: Json) {
      const env: Record<string, string> = {};
      const fromSecret: Record<string, { name: string; key: string; optional: boolean }> = {};
      for (const src of container.envFrom ?? []) {
        if (!src.configMapRef) throw new Error(`unexpected envFrom ${JSON.stringify(src)}`);
        Object.assign(env, named(objects(), 'ConfigMap', src.configMapRef.name).data);
      }
      for (const e of container.env ?? []) {
        if (e.value !== undefined) env[e.name] = e.value;
        else if (e.valueFrom?.secretKeyRef) {
          const { name, key, optional } = e.valueFrom.secretKeyRef;
          fromSecret[e.name] = { name, key, optional: optional === true };
        } else if (e.valueFrom?.fieldRef) env[e.name] = `field:${e.valueFrom.fieldRef.fieldPath}`;
      }
      return { env, fromSecret };
    }

    function effectiveConfig(container: Json) {
      const { env, fromSecret } = environment(container);
      const withSecrets = { ...env };
      for (const [k, ref] of Object.entries(fromSecret)) {
        const secret = objects().find((o) => o.kind === 'Secret' && o.metadata.name === ref.name);
        const value = secret?.stringData?.[ref.key] ?? secret?.data?.[ref.key];
        if (value !== undefined) withSecrets[k] = value;
        else if (!ref.optional) {
          // A Secret made out of band: REDIS_URL empty where the ConfigMap names another mode.
          const otherMode = env.REDIS_CLUSTER_NODES || env.REDIS_SENTINELS;
          withSecrets[k] =
            k === 'REDIS_URL' ? (otherMode ? '' : 'redis://redis.invalid:6379') : 'x'.repeat(32);
        }
      }
      return { env, fromSecret, config: loadConfig(withSecrets) };
    }

    test('every namespaced object is in the overlay namespace', () => {
      const ns = ofKind(objects(), 'Namespace');
      expect(ns).toHaveLength(1);
      for (const o of objects().filter((x) => x.kind !== 'Namespace')) {
        expect([id(o), o.metadata.namespace]).toEqual([id(o), ns[0].metadata.name]);
      }
    });

    test.each(['gateway', 'worker'] as const)(
      '%s: probes, entry point, port and settings agree with the code',
      (role) => {
        const { container } = app(role);
        const { config } = effectiveConfig(container);
        const http = (container.ports as Json[]).find((p) => p.name === 'http');
        expect(http?.containerPort).toBe(config.port);
        expect(container.readinessProbe?.httpGet).toEqual({ path: '/ready', port: 'http' });
        expect(container.livenessProbe?.httpGet).toEqual({ path: '/health', port: 'http' });
        if (container.startupProbe) {
          expect(container.startupProbe.httpGet).toEqual({ path: '/health', port: 'http' });
        }
        // A readiness failure must take the pod out well before liveness restarts it.
        const r = container.readinessProbe;
        const l = container.livenessProbe;
        expect(r.periodSeconds * r.failureThreshold).toBeLessThan(
          l.periodSeconds * l.failureThreshold,
        );
      },
    );

    test('the settings are settings shared/config.ts reads, and every one is set', () => {
      const known = configEnvNames();
      const { container } = app('gateway');
      const { env, fromSecret } = environment(container);
      for (const name of [...Object.keys(env), ...Object.keys(fromSecret)]) {
        if (name === 'NODE_OPTIONS') continue;
        expect([name, known.has(name)]).toEqual([name, true]);
      }
      const configured = new Set([...Object.keys(env), ...Object.keys(fromSecret)]);
      const missing = [...known].filter((k) => !configured.has(k));
      // Each setting of shared/config.ts is in the ConfigMap (base/kustomization.yaml), the
      // Secret, or the pod's own env.
      expect(missing).toEqual([]);
      for (const k of SECRET_KEYS) expect(fromSecret[k]?.optional).toBe(false);
    });

    test('the Secret the pods read is in the build, or the overlay says how to create it', () => {
      const names = new Set(
        (['gateway', 'worker'] as const).flatMap((role) =>
          Object.values(environment(app(role).container).fromSecret).map((s) => s.name),
        ),
      );
      expect(names.size).toBe(1);
      const [name] = names;
      const secret = objects().find((o) => o.kind === 'Secret' && o.metadata.name === name);
      if (production) {
        // No credentials in git: the production Secret is made out of band.
        expect(ofKind(objects(), 'Secret')).toEqual([]);
      }
      if (secret) {
        for (const k of SECRET_KEYS) {
          expect([k, typeof (secret.stringData?.[k] ?? secret.data?.[k])]).toEqual([k, 'string']);
        }
      } else {
        const doc = readText(`deploy/k8s/overlays/${overlay}/kustomization.yaml`);
        expect(doc).toContain(`create secret generic ${name}`);
        for (const k of SECRET_KEYS) expect(doc).toContain(`--from-literal=${k}=`);
      }
    });

    test('the Redis mode is the one the overlay is named for (redis-<mode>), else REDIS_URL', () => {
      const mode = /^redis-(cluster|sentinel)$/.exec(overlay)?.[1] ?? 'url';
      for (const role of ['gateway', 'worker'] as const) {
        const { config } = effectiveConfig(app(role).container);
        expect([role, config.redis?.kind]).toEqual([role, mode]);
        // On a Cluster, commands spread over one stream per master (3 or more assumed).
        const partitions = mode === 'cluster' ? 3 : 1;
        expect([role, config.commandPartitions]).toEqual([role, partitions]);
      }
      if (mode !== 'url') {
        // The Secret it documents leaves REDIS_URL empty, and the README points to the overlay.
        const doc = readText(`deploy/k8s/overlays/${overlay}/kustomization.yaml`);
        expect(doc).toMatch(/--from-literal=REDIS_URL= \\\n/);
        expect(readText('deploy/README.md')).toContain(`deploy/k8s/overlays/${overlay}`);
        expect(readText('README.md')).toContain(`deploy/k8s/overlays/${overlay}`);
      }
    });

    test('gateway: preStop + drain window + margin fit in the termination grace period', () => {
      const { pod, container, deployment } = app('gateway');
      const { config } = effectiveConfig(container);
      const preStop = container.lifecycle?.preStop;
      const preStopS = preStop?.sleep
        ? Number(preStop.sleep.seconds)
        : preStop?.exec?.command?.[0] === 'sleep'
          ? Number(preStop.exec.command[1])
          : NaN;
      // The endpoint must leave the Service and the ingress before SIGTERM starts the drain.
      expect(preStopS).toBeGreaterThanOrEqual(3);
      expect(preStopS + config.drainWindowMs / 1000 + SHUTDOWN_MARGIN_S).toBeLessThanOrEqual(
        pod.terminationGracePeriodSeconds,
      );
      // Rolling updates add a ready pod before an old one drains.
      expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    });

    test('worker: drain window + margin fit in the termination grace period', () => {
      const { pod, container } = app('worker');
      const { config } = effectiveConfig(container);
      expect(config.drainWindowMs / 1000 + SHUTDOWN_MARGIN_S).toBeLessThanOrEqual(
        pod.terminationGracePeriodSeconds,
      );
    });

    test('every pod runs as non-root, read-only, without capabilities, with resources', () => {
      for (const d of ofKind(objects(), 'Deployment')) {
        const pod = d.spec.template.spec;
        const where = id(d);
        expect([
          where,
          matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels),
        ]).toEqual([where, true]);
        expect([where, pod.automountServiceAccountToken]).toEqual([where, false]);
        expect([where, pod.securityContext?.runAsNonRoot]).toEqual([where, true]);
        expect([where, pod.securityContext?.runAsUser > 0]).toEqual([where, true]);
        expect([where, pod.securityContext?.seccompProfile?.type]).toEqual([
          where,
          'RuntimeDefault',
        ]);
        for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
          const sc = c.securityContext ?? {};
          const at = `${where} container ${c.name}`;
          expect([at, sc.allowPrivilegeEscalation]).toEqual([at, false]);
          expect([at, sc.readOnlyRootFilesystem]).toEqual([at, true]);
          expect([at, sc.privileged ?? false]).toEqual([at, false]);
          expect([at, sc.capabilities?.drop]).toEqual([at, ['ALL']]);
          expect([at, sc.capabilities?.add ?? []]).toEqual([at, []]);
          expect([at, sc.runAsUser ?? 1]).not.toEqual([at, 0]);
          const { requests = {}, limits = {} } = c.resources ?? {};
          for (const r of ['cpu', 'memory']) {
            expect([at, r, typeof requests[r], typeof limits[r]]).toEqual([
              at,
              r,
              'string',
              'string',
            ]);
          }
          expect(cpuCores(requests.cpu)).toBeLessThanOrEqual(cpuCores(limits.cpu));
          expect(sizeBytes(requests.memory)).toBeLessThanOrEqual(sizeBytes(limits.memory));
          // Node's heap limit stays below the container's memory limit.
          const heap = /--max-old-space-size=(\d+)/.exec(
            (c.env ?? []).find((e: Json) => e.name === 'NODE_OPTIONS')?.value ?? '',
          );
          if (heap) {
            expect(Number(heap[1]) * 1024 ** 2).toBeLessThan(sizeBytes(limits.memory) * 0.9);
          }
        }
      }
    });

    test('Services select pods and target ports they have', () => {
      const deployments = ofKind(objects(), 'Deployment');
      for (const s of ofKind(objects(), 'Service')) {
        const targets = deployments.filter((d) =>
          matches(s.spec.selector, d.spec.template.metadata.labels),
        );
        expect([id(s), targets.length]).toEqual([id(s), 1]);
        const ports = (targets[0].spec.template.spec.containers as Json[]).flatMap(
          (c) => c.ports ?? [],
        );
        for (const p of s.spec.ports) {
          const found = ports.some((cp: Json) =>
            typeof p.targetPort === 'string'
              ? cp.name === p.targetPort
              : cp.containerPort === (p.targetPort ?? p.port),
          );
          expect([id(s), p.name, found]).toEqual([id(s), p.name, true]);
        }
      }
    });

    test('the Ingress is set up for SSE and routes to the gateway Service', () => {
      const ingresses = ofKind(objects(), 'Ingress');
      expect(ingresses).toHaveLength(1);
      const ing = ingresses[0];
      const a = ing.metadata.annotations ?? {};
      const { config } = effectiveConfig(app('gateway').container);
      const p = 'nginx.ingress.kubernetes.io/';
      expect(ing.spec.ingressClassName).toBe('nginx');
      expect(a[`${p}proxy-buffering`]).toBe('off');
      expect(a[`${p}proxy-request-buffering`]).toBe('off');
      expect(a[`${p}proxy-http-version`]).toBe('1.1');
      for (const t of ['proxy-read-timeout', 'proxy-send-timeout']) {
        const s = durationSeconds(a[p + t]);
        expect([t, s >= 3600]).toEqual([t, true]);
        // Heartbeats keep a quiet stream under the read timeout.
        expect(s).toBeGreaterThan((3 * config.heartbeatIntervalMs) / 1000);
      }
      expect(sizeBytes(a[`${p}proxy-body-size`])).toBeGreaterThan(config.maxBodyBytes);
      const gatewayService = ofKind(objects(), 'Service').find((s) =>
        matches(s.spec.selector, app('gateway').deployment.spec.template.metadata.labels),
      );
      for (const rule of ing.spec.rules) {
        expect(typeof rule.host).toBe('string');
        for (const path of rule.http.paths) {
          const backend = path.backend.service;
          expect(backend.name).toBe(gatewayService.metadata.name);
          expect(gatewayService.spec.ports.map((x: Json) => x.name)).toContain(backend.port.name);
        }
      }
      if (production) {
        expect(ing.spec.tls?.[0]?.hosts).toEqual(ing.spec.rules.map((r: Json) => r.host));
      }
    });

    test('HorizontalPodAutoscalers own the replica count of both Deployments', () => {
      const hpas = ofKind(objects(), 'HorizontalPodAutoscaler');
      for (const role of ['gateway', 'worker'] as const) {
        const { deployment, container } = app(role);
        const hpa = hpas.find((h) => h.spec.scaleTargetRef.name === deployment.metadata.name);
        expect([role, hpa?.apiVersion]).toEqual([role, 'autoscaling/v2']);
        expect(hpa.spec.scaleTargetRef).toMatchObject({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
        });
        // A `replicas` in the Deployment would reset the autoscaler on every apply.
        expect([role, deployment.spec.replicas]).toEqual([role, undefined]);
        expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(production ? 2 : 1);
        expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
        for (const m of hpa.spec.metrics) {
          if (m.type === 'Resource') {
            expect(container.resources.requests[m.resource.name]).toBeDefined();
          }
        }
      }
    });

    test('PodDisruptionBudgets cover both Deployments and leave pods running', () => {
      const pdbs = ofKind(objects(), 'PodDisruptionBudget');
      for (const role of ['gateway', 'worker'] as const) {
        const { deployment } = app(role);
        const labels = deployment.spec.template.metadata.labels;
        const covering = pdbs.filter((p) => matches(p.spec.selector.matchLabels, labels));
        expect([role, covering.length]).toEqual([role, 1]);
        const hpa = ofKind(objects(), 'HorizontalPodAutoscaler').find(
          (h) => h.spec.scaleTargetRef.name === deployment.metadata.name,
        );
        const { maxUnavailable, minAvailable } = covering[0].spec;
        expect(maxUnavailable ?? minAvailable).toBeDefined();
        if (production && typeof maxUnavailable === 'number') {
          expect(hpa.spec.minReplicas - maxUnavailable).toBeGreaterThanOrEqual(1);
        }
      }
    });

    test('the image is pinned', () => {
      for (const role of ['gateway', 'worker'] as const) {
        const image: string = app(role).container.image;
        expect(image).toMatch(/:[\w.-]+$/);
        expect(image).not.toMatch(/:latest$/);
        if (production) expect(image).toMatch(/^[a-z0-9.-]+\.[a-z]+(:\d+)?\//);
      }
      expect(app('gateway').container.image).toBe(app('worker').container.image);
    });

    test('monitoring: ServiceMonitor, PrometheusRule and dashboard match their sources', () => {
      const monitors = ofKind(objects(), 'ServiceMonitor');
      const rules = ofKind(objects(), 'PrometheusRule');
      const dashboards = ofKind(objects(), 'ConfigMap').filter(
        (c) => c.metadata.labels?.grafana_dashboard === '1',
      );
      if (!production && monitors.length + rules.length + dashboards.length === 0) {
        return; // an overlay for clusters without the Prometheus Operator
      }
      expect([monitors.length, rules.length, dashboards.length]).toEqual([1, 1, 1]);

      const sm = monitors[0];
      const services = ofKind(objects(), 'Service');
      for (const role of ['gateway', 'worker'] as const) {
        const labels = app(role).deployment.spec.template.metadata.labels;
        const svc = services.find((s) => matches(s.spec.selector, labels));
        expect([role, matches(sm.spec.selector.matchLabels, svc.metadata.labels)]).toEqual([
          role,
          true,
        ]);
        // The job name the alerts and the dashboard use, as in docker-compose.
        expect(svc.metadata.labels[sm.spec.jobLabel]).toBe(
          role === 'gateway' ? 'mcp-gateway' : 'mcp-gateway-worker',
        );
        for (const ep of sm.spec.endpoints) {
          expect(svc.spec.ports.map((x: Json) => x.name)).toContain(ep.port);
          expect(ep.path).toBe('/metrics');
        }
      }

      const source = readYaml('deploy/prometheus/alerts.yml');
      expect(isDeepStrictEqual(rules[0].spec.groups, source.groups)).toBe(true);

      expect(dashboards[0].data).toEqual({
        'mcp-gateway.json': readText('deploy/grafana/dashboards/mcp-gateway.json'),
      });
    });
  });
});
