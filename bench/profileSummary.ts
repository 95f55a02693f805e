/**
 * Where a CPU profile's time went, grouped (HTTP and Express, auth and crypto, Redis client, zod,
 * MCP SDK, project code, GC, ...), and its top self-time functions: the reading of the
 * BENCH_CPU_PROFILE=1 profiles that bench/results/profiles/ collects.
 *
 *   node dist/bench/profileSummary.js [--window <startµs>,<endµs>] [--top N] a.cpuprofile [b ...]
 *
 * Several files are summed (e.g. both gateways). --window keeps only the samples taken between
 * two CLOCK_MONOTONIC times in µs (V8's profile clock): the tools/call scenario logs its
 * measured window so, so startup and warm-up are left out.
 *
 * Two views: self time by group, where a native function (a socket write, JSON.parse) counts in
 * the group of the JavaScript that called it; and time by the nearest caller outside Node's own
 * modules, which says whose work a socket write or a timer was (e.g. ioredis or the HTTP layer).
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const EXPRESS =
  /node_modules\/(express|router|body-parser|raw-body|finalhandler|send|qs|content-type|type-is|on-finished|accepts|negotiator|mime-types|media-typer|parseurl|path-to-regexp|depd|statuses|http-errors|iconv-lite|vary|proxy-addr|forwarded|fresh|etag|encodeurl|cors|express-rate-limit)\//;
const GROUPS: Array<[RegExp, string]> = [
  [EXPRESS, 'Express & middleware'],
  [
    /node_modules\/(jsonwebtoken|jws|jwa|jose|buffer-equal-constant-time|ecdsa-sig-formatter|ms|semver)\/|node:internal\/crypto|node:crypto/,
    'auth, JWT, crypto',
  ],
  [
    /node_modules\/(ioredis|redis-parser|redis-errors|cluster-key-slot|denque|standard-as-callback)\//,
    'Redis client (ioredis)',
  ],
  [/node_modules\/zod\//, 'zod'],
  [/node_modules\/@modelcontextprotocol\/sdk\//, 'MCP SDK'],
  [/node_modules\/(ajv|ajv-formats|fast-deep-equal|fast-uri|json-schema-traverse)\//, 'ajv'],
  [/node_modules\/(@hono)\//, 'hono (SDK web-standard adapter)'],
  [
    /node_modules\/(winston|logform|triple-beam|winston-transport|readable-stream|safe-stable-stringify)\//,
    'logging (winston)',
  ],
  [/node_modules\/(prom-client|tdigest|bintrees)\//, 'metrics (prom-client)'],
  [/node:_http_|node:http$|node:internal\/http/, 'Node HTTP'],
  [
    /node:net|node:stream|node:internal\/(stream|streams|net|stream_base_commons)/,
    'Node net/streams',
  ],
  [/\/dist\/gateway\//, 'project gateway/'],
  [/\/dist\/worker\//, 'project worker/'],
  [/\/dist\/shared\//, 'project shared/'],
  [/\/dist\/bin\//, 'project bin/'],
  [/node:internal\/modules|node:internal\/vm/, 'module loading (startup)'],
  [
    /node:internal\/(timers|process\/task_queues|async_hooks|event_target|abort_controller)|node:timers|node:events/,
    'Node timers/events/ticks',
  ],
  [/^node:/, 'Node other'],
];

function groupOf(frame: CallFrame): string | undefined {
  if (frame.functionName === '(garbage collector)') return 'GC';
  if (frame.functionName === '(program)') return '(program)';
  if (frame.url === '') return undefined;
  for (const [pattern, name] of GROUPS) if (pattern.test(frame.url)) return name;
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(frame.url);
  return dep ? `other: ${dep[1]}` : `other: ${frame.url}`;
}

const isNodeOwn = (frame: CallFrame) => frame.url === '' || frame.url.startsWith('node:');

function label(frame: CallFrame): string {
  const where = frame.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, '');
  return `${frame.functionName || '(anonymous)'} ${where}${where ? `:${frame.lineNumber + 1}` : ''}`;
}

interface Totals {
  busy: number;
  idle: number;
  byGroup: Map<string, number>;
  byCaller: Map<string, number>;
  byFunction: Map<string, number>;
}

function add(map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value);
}

function summarise(file: string, totals: Totals, window?: [number, number]): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const ancestors = function* (id: number) {
    for (let a = parent.get(id); a !== undefined; a = parent.get(a)) yield nodes.get(a)!;
  };
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i];
    // A sample stands for the time until the next one.
    const micros = profile.timeDeltas[i + 1] ?? 0;
    if (window && (at < window[0] || at > window[1])) continue;
    const node = nodes.get(profile.samples[i])!;
    const frame = node.callFrame;
    if (frame.functionName === '(idle)') {
      totals.idle += micros;
      continue;
    }
    if (frame.functionName === '(root)') continue;
    totals.busy += micros;
    add(totals.byFunction, label(frame), micros);
    let group = groupOf(frame);
    if (group === undefined) {
      if (/^(parse|stringify)$/.test(frame.functionName)) group = 'JSON (native)';
      else {
        let caller: string | undefined;
        for (const a of ancestors(node.id)) if ((caller = groupOf(a.callFrame))) break;
        group = caller ?? 'other';
      }
    }
    add(totals.byGroup, group, micros);
    let owner = 'GC, (program)';
    if (group !== 'GC' && group !== '(program)') {
      owner = isNodeOwn(frame) ? 'Node only (event loop, ticks)' : (groupOf(frame) ?? 'other');
      if (isNodeOwn(frame)) {
        for (const a of ancestors(node.id)) {
          if (!isNodeOwn(a.callFrame)) {
            owner = groupOf(a.callFrame) ?? 'other';
            break;
          }
        }
      }
    }
    add(totals.byCaller, owner, micros);
  }
}

function print(title: string, map: Map<string, number>, busy: number, top: number): void {
  console.log(`-- ${title}`);
  for (const [key, micros] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    const share = ((100 * micros) / busy).toFixed(1).padStart(5);
    console.log(`${share}%  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${key}`);
  }
}

function main(argv: string[]): void {
  let window: [number, number] | undefined;
  let top = 25;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--window') {
      const [start, end] = (argv[++i] ?? '').split(',').map(Number);
      if (!(start < end)) throw new Error('--window takes <startµs>,<endµs>');
      window = [start, end];
    } else if (argv[i] === '--top') top = Number(argv[++i]);
    else files.push(argv[i]);
  }
  if (files.length === 0) {
    throw new Error('usage: profileSummary [--window start,end] [--top N] a.cpuprofile [...]');
  }
  const totals: Totals = {
    busy: 0,
    idle: 0,
    byGroup: new Map(),
    byCaller: new Map(),
    byFunction: new Map(),
  };
  for (const file of files) summarise(file, totals, window);
  console.log(
    `${files.length} profile(s): busy ${(totals.busy / 1e6).toFixed(2)} s, ` +
      `idle ${(totals.idle / 1e6).toFixed(2)} s${window ? ' (in the window)' : ''}`,
  );
  print(
    'self time by group (natives count in their caller’s group)',
    totals.byGroup,
    totals.busy,
    top,
  );
  print('time by nearest caller outside Node’s own modules', totals.byCaller, totals.busy, top);
  print('top self-time functions', totals.byFunction, totals.busy, top);
}

main(process.argv.slice(2));
