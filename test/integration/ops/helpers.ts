/**
 * Shared by the offline checks of deploy/, Dockerfile and docker-compose.yml: paths, YAML,
 * required system tools (never skipped: a missing tool fails with what to install), the
 * metric names the code exports, and the environment variables shared/config.ts reads.
 */
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { createMetrics } from '../../../shared/metrics';

export const ROOT = resolve(__dirname, '..', '..', '..');
export const repoPath = (...parts: string[]) => join(ROOT, ...parts);
export const readText = (rel: string) => readFileSync(repoPath(rel), 'utf8');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** One YAML document; `<<` merge keys resolved, as Compose and Prometheus read them. */
export function readYaml(rel: string): Json {
  return parseYaml(readText(rel), rel);
}

export function parseYaml(text: string, what: string): Json {
  try {
    return parse(text, { merge: true });
  } catch (e) {
    throw new Error(`${what}: invalid YAML: ${(e as Error).message}`);
  }
}

/** Every non-empty document of a multi-document YAML stream. */
export function parseYamlStream(text: string, what: string): Json[] {
  return parseAllDocuments(text)
    .map((doc, i) => {
      if (doc.errors.length) throw new Error(`${what}, document ${i}: ${doc.errors[0].message}`);
      return doc.toJS();
    })
    .filter((o) => o !== null && o !== undefined);
}

/**
 * The path of a system tool, or an error that says how to get it. `envVar` overrides the
 * lookup; `extraDirs` covers sbin directories that are not on a non-root user's PATH.
 */
export function requireTool(
  name: string,
  envVar: string,
  installHint: string,
  extraDirs: string[] = [],
): string {
  const override = process.env[envVar];
  const candidates = override
    ? [override]
    : [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]
        .filter(Boolean)
        .map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next candidate
    }
  }
  throw new Error(
    `${name} is required by this test and was not found${override ? ` at ${envVar}=${override}` : ' on PATH'}. ` +
      `${installHint} (.ci/run installs it on CI), or set ${envVar} to its path.`,
  );
}

export function run(cmd: string, args: string[], cwd = ROOT): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  return r;
}

/** The command line an npm script runs (`exec ` stripped), e.g. ['node', 'dist/bin/gateway.js']. */
export function npmScriptCommand(script: string): string[] {
  const pkg = JSON.parse(readText('package.json'));
  const line: string | undefined = pkg.scripts?.[script];
  if (!line) throw new Error(`package.json has no "${script}" script`);
  return line
    .replace(/^exec\s+/, '')
    .trim()
    .split(/\s+/);
}

/**
 * Environment variables shared/config.ts reads: the keys of its envSchema object, read from
 * the source (the schema is not exported).
 */
export function configEnvNames(): Set<string> {
  const src = readText('shared/config.ts');
  const body = /const envSchema = z\.object\(\{([\s\S]*?)\n\}\);/.exec(src);
  if (!body) throw new Error('shared/config.ts: `const envSchema = z.object({ ... });` not found');
  const names = new Set([...body[1].matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]));
  if (names.size < 5) throw new Error(`shared/config.ts: only ${names.size} env names found`);
  return names;
}

/** Labels Prometheus attaches to every scraped series, in docker-compose and Kubernetes. */
export const TARGET_LABELS = new Set([
  'job',
  'instance',
  'pod',
  'namespace',
  'service',
  'container',
  'endpoint',
]);

export interface ExportedMetric {
  type: string;
  labels: Set<string>;
  /** The metric a series belongs to: the histogram's name for its _bucket series. */
  base: string;
}

/**
 * Every series name the processes export, from createMetrics('all'): histograms and
 * summaries with their _bucket/_sum/_count series. Labels include the default `role`.
 */
export async function exportedMetrics(): Promise<Map<string, ExportedMetric>> {
  const m = createMetrics('all');
  const out = new Map<string, ExportedMetric>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    const single = m.registry.getSingleMetric(metric.name) as unknown as {
      labelNames?: string[];
    };
    const labels = new Set<string>(['role', ...(single?.labelNames ?? [])]);
    for (const v of metric.values) for (const l of Object.keys(v.labels ?? {})) labels.add(l);
    const type = String(metric.type);
    const base = metric.name;
    out.set(base, { type, labels, base });
    if (type === 'histogram' || type === 'summary') {
      const withLe = new Set([...labels, type === 'histogram' ? 'le' : 'quantile']);
      out.set(`${base}_bucket`, { type, labels: withLe, base });
      out.set(`${base}_sum`, { type, labels, base });
      out.set(`${base}_count`, { type, labels, base });
    }
  }
  m.registry.clear();
  return out;
}

/** Metric names a PromQL expression (or any text) mentions: `mcpgw_` plus name characters. */
export function mcpgwNames(text: string): string[] {
  return [...new Set(text.match(/mcpgw_[a-zA-Z0-9_:]+/g) ?? [])];
}

/** `1h`, `3600s`, `3600`, `90m` (nginx and Kubernetes annotation styles) in seconds. */
export function durationSeconds(v: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(String(v).trim());
  if (!m) throw new Error(`not a duration: ${v}`);
  const n = Number(m[1]);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2] ?? 's'] as number;
  return n * unit;
}

/** `2m`, `1048576`, `512k`, `1Mi`, `2Gi` (nginx sizes and Kubernetes quantities) in bytes. */
export function sizeBytes(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([a-zA-Z]*)$/.exec(String(v).trim());
  if (!m) throw new Error(`not a size: ${v}`);
  const units: Record<string, number> = {
    '': 1,
    k: 1024,
    K: 1024,
    m: 1024 ** 2,
    M: 1024 ** 2,
    g: 1024 ** 3,
    G: 1024 ** 3,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
  };
  if (!(m[2] in units)) throw new Error(`unknown size unit in ${v}`);
  return Number(m[1]) * units[m[2]];
}

/** Kubernetes CPU quantity in cores (`250m`, `1`, `'2'`). */
export function cpuCores(v: string | number): number {
  const s = String(v);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}
