/**
 * Issue 14 item 4: the backlog's log messages as real MCP clients see them, through two gateway
 * processes behind a round-robin proxy (each request lands on the other pod), workers serving
 * the default backlog server, real Redis.
 *
 * - 2025-11-25 (SDK 1.x Client): `logging/setLevel` on one pod, a call on the other gets the
 *   messages at or above the level only, in order with its progress and before its result; a
 *   session whose server is rebuilt on a worker that never saw the setLevel keeps its level.
 * - 2026-07-28 (`@modelcontextprotocol/client` 2.x): log messages only for a request whose
 *   `_meta` names a level, and only at or above it.
 * Processes run the compiled dist/ (make builds it).
 */
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
} from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { issueToken } from '../../shared/auth';
import { MCP_META } from '../../shared/mcpTransports';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { recordCallMessages, streamableTransport } from '../helpers/sdkClient';
import { spawnRole } from '../helpers/processes';
import { scrapeMetric } from '../helpers/scrape';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';

const SECRET = 'mcp-logging-secret-0123456789abcdef';
const token = issueToken(SECRET, { type: 'team', sub: 'logging-team', ttl: '1h' });

let cluster: TestCluster;
let proxy: RoundRobinProxy;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  cluster = await startCluster('mcp-logging', { gateways: 2, workers: 2, jwtSecret: SECRET });
  proxy = await startRoundRobinProxy(cluster.gateways.map((g) => g.url));
}, 60_000);

afterAll(async () => {
  await Promise.all(closers.splice(0).map((close) => close().catch(() => undefined)));
  await proxy?.close();
  await cluster?.stop();
});

/** A 2025-11-25 session, and what its last call showed the client, in order. */
async function session() {
  const transport = streamableTransport(proxy.url, token);
  const client = new Client({ name: 'mcp-logging-test', version: '1.0.0' });
  await client.connect(transport);
  closers.push(() => client.close());
  return { client, ...recordCallMessages(client) };
}

/** The pods (proxy targets) that took the requests whose bodies contain `needle`. */
function podsOf(needle: string): number[] {
  return proxy.log.filter((r) => r.body.includes(needle)).map((r) => r.target);
}

describe('2025-11-25: logging/setLevel per session, across pods', () => {
  it('a level set through one pod filters a call made through the other', async () => {
    const { client, seen, logs, call } = await session();
    expect(client.getServerCapabilities()?.logging).toEqual({});
    await client.setLoggingLevel('info');
    const work = await call('simulate_work', { steps: 3, delayMs: 20 });
    expect(work.structuredContent).toMatchObject({ completedSteps: 3, cancelled: false });
    // No debug (one per step): progress in order, the info last, then the result.
    expect(seen).toEqual(['progress:1', 'progress:2', 'progress:3', 'log:info', 'result']);
    expect(logs).toEqual([
      {
        level: 'info',
        logger: 'backlog',
        data: { tool: 'simulate_work', message: 'Completed 3 steps', steps: 3, completedSteps: 3 },
      },
    ]);
    const [setLevelPod] = podsOf('"logging/setLevel"');
    const [callPod] = podsOf('"simulate_work"');
    expect(setLevelPod).not.toBe(callPod);

    // Raised on the other pod: nothing below error any more.
    await client.setLoggingLevel('error');
    await call('simulate_work', { steps: 2, delayMs: 10 });
    expect(seen).toEqual(['progress:1', 'progress:2', 'result']);
  });

  it('a session that set no level gets every message; the level of one session is not another’s', async () => {
    const quiet = await session();
    await quiet.client.setLoggingLevel('warning');
    const chatty = await session();
    await chatty.call('simulate_work', { steps: 2, delayMs: 10 });
    expect(chatty.seen).toEqual([
      'log:debug',
      'progress:1',
      'log:debug',
      'progress:2',
      'log:info',
      'result',
    ]);
    const created = await chatty.call('create_project', { name: 'Logged' });
    const projectId = (created.structuredContent as { id: string }).id;
    expect(chatty.logs).toEqual([
      {
        level: 'info',
        logger: 'backlog',
        data: {
          tool: 'create_project',
          message: `Created project "Logged" (${projectId})`,
          projectId,
        },
      },
    ]);
    await quiet.call('create_project', { name: 'Quiet' });
    expect(quiet.logs).toEqual([]);
    const missing = await quiet.call('get_story_tree', { storyId: 'sty_missing' });
    expect(missing.isError).toBe(true);
    expect(quiet.logs.map((l) => l.level)).toEqual(['warning']);
  });
});

describe('2026-07-28: the request’s _meta log level', () => {
  async function modernClient() {
    const client = new ModernClient(
      { name: 'mcp-logging-modern', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    await client.connect(
      new ModernTransport(new URL(`${proxy.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    closers.push(() => client.close());
    const seen: string[] = [];
    client.setNotificationHandler('notifications/message', (n) => {
      seen.push(`log:${n.params.level}`);
    });
    const call = async (logLevel?: string) => {
      seen.length = 0;
      await client.callTool(
        {
          name: 'simulate_work',
          arguments: { steps: 2, delayMs: 10 },
          ...(logLevel ? { _meta: { [MCP_META.logLevel]: logLevel } } : {}),
        },
        { onprogress: (p) => seen.push(`progress:${p.progress}`) },
      );
      seen.push('result');
      return [...seen];
    };
    return { client, call };
  }

  it('no messages without a level; at or above it with one', async () => {
    const { client, call } = await modernClient();
    expect(client.getServerCapabilities()?.logging).toEqual({});
    expect(await call()).toEqual(['progress:1', 'progress:2', 'result']);
    expect(await call('info')).toEqual(['progress:1', 'progress:2', 'log:info', 'result']);
    expect(await call('debug')).toEqual([
      'log:debug',
      'progress:1',
      'log:debug',
      'progress:2',
      'log:info',
      'result',
    ]);
    expect(await call('error')).toEqual(['progress:1', 'progress:2', 'result']);
  });
});

describe('a session rebuilt on a worker that never saw its setLevel', () => {
  it('keeps its level', async () => {
    const { client, seen, call } = await session();
    await client.setLoggingLevel('info');
    await call('simulate_work', { steps: 1, delayMs: 5 });
    expect(seen).toEqual(['progress:1', 'log:info', 'result']);
    // A new worker takes over: the session's server is built there from the session record.
    const fresh = await spawnRole('worker', { ...cluster.env, POD_ID: 'worker-3' });
    await Promise.all(cluster.workers.map((w) => w.kill('SIGTERM')));
    await call('simulate_work', { steps: 2, delayMs: 5 });
    expect(seen).toEqual(['progress:1', 'progress:2', 'log:info', 'result']);
    // The call ran there (the only worker left), not on a server that had seen the setLevel.
    expect(await scrapeMetric(fresh.url, 'mcpgw_commands_completed_total', 'outcome="ok"')).toBe(1);
  }, 60_000);
});
