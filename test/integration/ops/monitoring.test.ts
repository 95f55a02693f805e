/**
 * The Grafana dashboard and the Prometheus alert rules query only metrics the code exports
 * (shared/metrics.ts, built with createMetrics('all')), with labels those metrics have, and
 * jobs that docker-compose's Prometheus and the Kubernetes ServiceMonitor both define; the
 * Kubernetes copies of the dashboard and the rules have not drifted from their sources.
 */
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import {
  durationSeconds,
  ExportedMetric,
  exportedMetrics,
  Json,
  mcpgwNames,
  parseYamlStream,
  readText,
  readYaml,
  repoPath,
  TARGET_LABELS,
} from './helpers';

const DASHBOARD = 'deploy/grafana/dashboards/mcp-gateway.json';
const ALERTS = 'deploy/prometheus/alerts.yml';
const K8S_DASHBOARD = 'deploy/k8s/monitoring/dashboards/mcp-gateway.json';
const K8S_RULES = 'deploy/k8s/monitoring/prometheusrule.yaml';
const SYNC = 'run deploy/sync-k8s-monitoring.sh';

let metrics: Map<string, ExportedMetric>;
beforeAll(async () => {
  metrics = await exportedMetrics();
});

const dashboard = (): Json => JSON.parse(readText(DASHBOARD));
const rules = (): Json[] =>
  readYaml(ALERTS).groups.flatMap((g: Json) => g.rules.map((r: Json) => ({ group: g.name, ...r })));

/** Every PromQL expression of the dashboard: panel targets and template variable queries. */
function dashboardQueries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walkPanels = (panels: Json[] = []) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walkPanels(p.panels);
    }
  };
  walkPanels(dashboard().panels);
  for (const v of dashboard().templating?.list ?? []) {
    if (v.type === 'query') {
      out.push({ where: `variable ${v.name}`, expr: v.query?.query ?? v.query ?? v.definition });
    }
  }
  return out;
}

/**
 * What is wrong with one expression: a metric the code does not export, a label matcher or
 * grouping label that none of its metrics has, a job no scrape configuration defines.
 */
function problems(expr: string, jobs: Set<string>): string[] {
  const errors: string[] = [];
  const names = mcpgwNames(expr);
  const usable = new Set([...TARGET_LABELS, '__name__']);
  for (const n of names) {
    const m = metrics.get(n);
    if (!m) errors.push(`${n} is not exported by shared/metrics.ts`);
    else for (const l of m.labels) usable.add(l);
  }
  // Label matchers of each selector must be labels of that metric.
  for (const sel of expr.matchAll(/(mcpgw_[a-zA-Z0-9_:]+)\s*\{([^}]*)\}/g)) {
    const m = metrics.get(sel[1]);
    for (const l of sel[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
      if (m && !m.labels.has(l[1]) && !TARGET_LABELS.has(l[1])) {
        errors.push(`${sel[1]} has no label ${l[1]}`);
      }
    }
  }
  // Grouping and matching labels must exist on some metric of the expression.
  for (const g of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const l of g[1].split(',').map((s) => s.trim())) {
      if (l && !usable.has(l)) errors.push(`grouping label ${l} is on none of ${names.join(', ')}`);
    }
  }
  // Jobs: the names of docker-compose's scrape jobs and the Kubernetes Services' job label.
  for (const j of expr.matchAll(/\bjob\s*(=~|=)\s*"([^"]*)"/g)) {
    const values = j[1] === '=~' ? j[2].split('|') : [j[2]];
    for (const v of values) if (!jobs.has(v)) errors.push(`no scrape job named ${v}`);
  }
  // `up` is Prometheus' own; every other metric is ours.
  if (names.length === 0 && !/\bup\b/.test(expr)) errors.push('queries no metric of ours');
  return errors;
}

/** Job names of docker-compose's Prometheus, checked equal to the Kubernetes Services' label. */
function scrapeJobs(): Set<string> {
  const compose = new Set<string>(
    readYaml('deploy/prometheus/prometheus.yml')
      .scrape_configs.map((s: Json) => s.job_name)
      .filter((j: string) => j !== 'prometheus'),
  );
  const services = parseYamlStream(readText('deploy/k8s/base/services.yaml'), 'services.yaml');
  const k8s = new Set(services.map((s) => s.metadata.labels['mcpgw.io/job']));
  expect([...k8s].sort()).toEqual([...compose].sort());
  return compose;
}

describe('metrics the dashboard and the alerts query', () => {
  test('the code exports the metrics this check relies on', () => {
    expect(metrics.get('mcpgw_command_duration_seconds_bucket')?.labels.has('le')).toBe(true);
    expect(metrics.get('mcpgw_connections_open')?.labels.has('token_type')).toBe(true);
    expect(metrics.get('mcpgw_connections_open')?.labels.has('transport')).toBe(true);
    expect(metrics.has('mcpgw_process_cpu_seconds_total')).toBe(true);
  });

  test('the checker finds wrong names, labels and jobs (it is not vacuous)', () => {
    const jobs = new Set(['mcp-gateway']);
    expect(problems('rate(mcpgw_no_such_metric_total[5m])', jobs)).toHaveLength(1);
    expect(problems('sum(mcpgw_connections_open{tokentype="team"})', jobs)).toHaveLength(1);
    expect(problems('sum by (tokentype) (mcpgw_connections_open)', jobs)).toHaveLength(1);
    expect(problems('up{job="nope"}', jobs)).toHaveLength(1);
    expect(problems('vector(1)', jobs)).toHaveLength(1);
    expect(problems('max by (job, pod) (mcpgw_nodejs_eventloop_lag_p99_seconds)', jobs)).toEqual(
      [],
    );
  });

  test('every dashboard query uses exported metrics, their labels and known jobs', () => {
    const jobs = scrapeJobs();
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(20);
    const bad = queries.flatMap((q) => problems(q.expr, jobs).map((e) => `${q.where}: ${e}`));
    expect(bad).toEqual([]);
  });

  test('every alert rule uses exported metrics, their labels and known jobs', () => {
    const jobs = scrapeJobs();
    const bad = rules().flatMap((r) => problems(r.expr, jobs).map((e) => `${r.alert}: ${e}`));
    expect(bad).toEqual([]);
  });

  test('the dashboard shows every metric of shared/metrics.ts', () => {
    const used = new Set(
      dashboardQueries().flatMap((q) => mcpgwNames(q.expr).map((n) => metrics.get(n)?.base)),
    );
    const ours = [...new Set([...metrics.values()].map((m) => m.base))].filter(
      (n) => !/^mcpgw_(process|nodejs)_/.test(n),
    );
    // A new metric in shared/metrics.ts needs a panel in the dashboard.
    expect(ours.filter((n) => !used.has(n))).toEqual([]);
  });

  test('the dashboard has the panels operators look for', () => {
    const all = dashboardQueries()
      .map((q) => q.expr)
      .join('\n');
    for (const needle of [
      'sum by (token_type) (mcpgw_connections_open',
      'sum by (transport) (mcpgw_connections_open',
      'histogram_quantile(0.99, sum by (le) (rate(mcpgw_command_duration_seconds_bucket',
      'histogram_quantile(0.99, sum by (le) (rate(mcpgw_broadcast_fanout_seconds_bucket',
      'mcpgw_command_queue',
      'mcpgw_process_cpu_seconds_total',
      'mcpgw_process_resident_memory_bytes',
      'sum by (status) (rate(mcpgw_http_requests_total',
      // Per-node Redis health: masters by shard, every node, PING latency.
      'max by (shard, node) (mcpgw_redis_node_up{namespace=~"$namespace", redis_role="master"})',
      'min by (node, redis_role) (mcpgw_redis_node_up',
      'max by (node) (mcpgw_redis_node_ping_seconds',
    ]) {
      expect([needle, all.includes(needle)]).toEqual([needle, true]);
    }
    const d = dashboard();
    expect(d.uid).toBe('mcp-gateway');
    // Portable: every panel reads the datasource variable, not a fixed datasource uid.
    const fixed = JSON.stringify(d).match(/"uid":\s*"(?!\$\{datasource\}|mcp-gateway")[^"]*"/g);
    expect(fixed).toBeNull();
    const ids = d.panels.map((p: Json) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('alert rules', () => {
  test('are well formed, uniquely named, with severity and text for whoever is paged', () => {
    const all = rules();
    const names = all.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const r of all) {
      expect([r.alert, typeof r.expr]).toEqual([r.alert, 'string']);
      expect([r.alert, ['critical', 'warning', 'info'].includes(r.labels?.severity)]).toEqual([
        r.alert,
        true,
      ]);
      expect([r.alert, typeof r.annotations?.summary, typeof r.annotations?.description]).toEqual([
        r.alert,
        'string',
        'string',
      ]);
      if (r.for !== undefined) expect(durationSeconds(r.for)).toBeGreaterThan(0);
      // Balanced brackets: a cheap syntax check (promtool is not required here).
      for (const [o, c] of ['()', '[]', '{}']) {
        expect([r.alert, r.expr.split(o).length]).toEqual([r.alert, r.expr.split(c).length]);
      }
    }
  });

  test('cover the failures deploy/README.md documents', () => {
    const byName = new Map(rules().map((r) => [r.alert, r.expr as string]));
    const expectations: [string, string][] = [
      ['McpGatewayNoReadyGateways', 'mcpgw_ready{role="gateway"}'],
      ['McpGatewayCommandLagGrowing', 'mcpgw_command_queue{state="waiting"}'],
      ['McpGatewayDeadLetters', 'mcpgw_commands_dead_lettered_total'],
      ['McpGatewaySlowConsumerSpike', 'mcpgw_slow_consumer_disconnects_total'],
      ['McpGatewayRedisDown', 'mcpgw_redis_errors_total'],
      ['McpGatewayRedisNodeDown', 'mcpgw_redis_node_up'],
      ['McpGatewayRedisClusterFail', 'mcpgw_redis_cluster_state{state="fail"}'],
    ];
    for (const [alert, needle] of expectations) {
      expect([alert, byName.get(alert)?.includes(needle)]).toEqual([alert, true]);
    }
    const readme = readText('deploy/README.md');
    for (const alert of byName.keys()) {
      expect([alert, readme.includes(alert)]).toEqual([alert, true]);
    }
  });
});

describe('Kubernetes copies of the monitoring sources', () => {
  test(`${K8S_DASHBOARD} is ${DASHBOARD} (${SYNC})`, () => {
    expect(readFileSync(repoPath(K8S_DASHBOARD), 'utf8') === readText(DASHBOARD)).toBe(true);
  });

  test(`${K8S_RULES} has the rule groups of ${ALERTS} (${SYNC})`, () => {
    const [rule] = parseYamlStream(readText(K8S_RULES), K8S_RULES);
    expect(rule.kind).toBe('PrometheusRule');
    expect(isDeepStrictEqual(rule.spec.groups, readYaml(ALERTS).groups)).toBe(true);
  });
});
