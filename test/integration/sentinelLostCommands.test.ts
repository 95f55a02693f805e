/**
 * Issue 15, Sentinel: commands accepted before a failover get their result, or a clear error if
 * the asynchronous replica lost them. The replica is frozen (SIGSTOP) so that it misses the
 * commands queued next; the master is then SIGKILLed, the replica thawed and promoted. No worker
 * runs meanwhile, so nothing is finished before the failover. Each lost command's client must
 * get exactly one -32012 error on the channel it waits on (a seed connection's stream, a
 * 2025-11-25 session's POST stream, a 2026-07-28 POST), each command the replica had received
 * exactly one result (from a worker started after the failover), and nothing else. A client
 * whose last event the replica never got is told `history-lost`.
 */
import Redis from 'ioredis';
import { issueToken } from '../../shared/auth';
import { RPC_ERRORS } from '../../shared/protocol';
import { uniquePrefix } from '../../devSupport/redis';
import { type SentinelGroup, startSentinelGroup } from '../../devSupport/sentinel';
import { waitFor } from '../../devSupport/waitFor';
import { initializeSession } from '../helpers/mcpHttp';
import { reapAll, spawnRole, type SpawnedProcess } from '../helpers/processes';
import { callTool, openSseClient, sendCommand, type SseClient } from '../helpers/sseClient';

const SECRET = 'sentinel-lost-secret-0123456789abcdef';
const team = issueToken(SECRET, { type: 'team', sub: 'team-lost', ttl: '1h' });
const master = issueToken(SECRET, { type: 'master', sub: 'master-lost', ttl: '1h' });

let group: SentinelGroup;
let env: Record<string, string>;
let gateway: SpawnedProcess;
let client: SseClient | undefined;
const admins: Redis[] = [];

beforeAll(async () => {
  group = await startSentinelGroup();
  env = {
    REDIS_SENTINELS: group.sentinelsEnv,
    REDIS_SENTINEL_MASTER: group.masterName,
    REDIS_PREFIX: uniquePrefix('lost'),
    JWT_SECRET: SECRET,
    CLAIM_IDLE_MS: '1000',
    MAX_PROJECTS_PER_TOKEN: '1000',
  };
  gateway = await spawnRole('gateway', { ...env, POD_ID: 'gateway-lost' });
}, 60_000);

afterAll(async () => {
  client?.close();
  for (const admin of admins) admin.disconnect();
  await reapAll();
  await group?.stop();
});

/** A direct connection to one data server (not through the engine). */
function admin(port: number): Redis {
  const connection = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  connection.on('error', () => undefined);
  admins.push(connection);
  return connection;
}

/** The JSON-RPC messages of a POST /mcp answer: one JSON body, or the data of each SSE event. */
async function rpcMessages(response: Promise<Response>): Promise<Record<string, unknown>[]> {
  const res = await response;
  const text = await res.text(); // the stream ends after its last reply
  if ((res.headers.get('content-type') ?? '').includes('application/json')) {
    return [JSON.parse(text) as Record<string, unknown>];
  }
  return text
    .split('\n\n')
    .map((frame) =>
      frame
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trim())
        .join('\n'),
    )
    .filter((data) => data !== '')
    .map((data) => JSON.parse(data) as Record<string, unknown>);
}

function postMcp(body: object, headers: Record<string, string>): Promise<Response> {
  return fetch(`${gateway.url}/mcp`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${team}`,
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

/** A broadcast to team tokens; its HTTP status. */
async function broadcast(seq: number): Promise<number> {
  const res = await fetch(`${gateway.url}/mcp/sse/broadcast`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${master}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ message: { type: 'tick', seq }, filter: { tokenTypes: ['team'] } }),
  });
  await res.text();
  return res.status;
}

const createProject = (name: string) => ({
  method: 'tools/call',
  params: { name: 'create_project', arguments: { name } },
});

test('commands the promoted replica never received get one -32012 each; the others one result', async () => {
  // A 2025-11-25 session needs a worker for its initialize; the worker then stops, so that no
  // command below is finished before the failover.
  const initWorker = await spawnRole('worker', { ...env, POD_ID: 'worker-init' });
  const sessionId = await initializeSession(gateway.url, team);
  await initWorker.kill('SIGTERM');
  client = await openSseClient(gateway.url, team, { extraEvents: ['tick'] });
  const seed = client;
  expect(await broadcast(1)).toBe(202);
  await seed.next((e) => e.event === 'tick' && e.json.seq === 1);

  // Received by the replica: queued, then replicated (WAIT after a write of our own: the
  // replica acknowledged everything written before it).
  const survivors: string[] = [];
  for (let i = 0; i < 5; i++) {
    const { status, body } = await sendCommand(
      gateway.url,
      team,
      seed.connectionId,
      createProject(`kept-${i}`),
    );
    expect(status).toBe(202);
    survivors.push(body.requestId!);
  }
  const oldPort = await group.masterPort();
  const replicaPort = await group.replicaPort();
  const masterServer = admin(oldPort);
  await masterServer.set('lost-test:marker', '1');
  expect(await masterServer.wait(1, 10_000)).toBe(1);

  // Missed by the replica: queued on the master while the replica is frozen and cut off (a
  // frozen replica alone would still find the writes in its socket buffer when thawed).
  group.signalDataServer(replicaPort, 'SIGSTOP');
  await masterServer.call('CLIENT', 'KILL', 'TYPE', 'replica');
  // A broadcast the client gets live, which the replica never gets: the client's last event.
  expect(await broadcast(2)).toBe(202);
  await seed.next((e) => e.event === 'tick' && e.json.seq === 2);
  const lost: string[] = [];
  for (let i = 0; i < 5; i++) {
    const { status, body } = await sendCommand(
      gateway.url,
      team,
      seed.connectionId,
      createProject(`lost-${i}`),
    );
    expect(status).toBe(202);
    lost.push(body.requestId!);
  }
  const sessionAnswer = rpcMessages(
    postMcp(
      { jsonrpc: '2.0', id: 'session-call', ...createProject('lost-session') },
      { 'Mcp-Session-Id': sessionId, 'MCP-Protocol-Version': '2025-11-25' },
    ),
  );
  const modernCall = createProject('lost-modern');
  const modernAnswer = rpcMessages(
    postMcp(
      {
        jsonrpc: '2.0',
        id: 'modern-call',
        method: modernCall.method,
        params: {
          ...modernCall.params,
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientInfo': { name: 'lost-test', version: '1' },
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      },
      {
        'MCP-Protocol-Version': '2026-07-28',
        'Mcp-Method': 'tools/call',
        'Mcp-Name': 'create_project',
      },
    ),
  );
  // Both POSTs are queued on the master (7 commands since the frozen replica's last one).
  await waitFor(
    async () => (await masterServer.xlen(`${env.REDIS_PREFIX}cmd`)) === 12,
    10_000,
    'the POSTs queued on the master',
  );

  // The master dies with what the replica missed; the thawed replica is promoted.
  await group.killMaster();
  group.signalDataServer(replicaPort, 'SIGCONT');
  const newPort = await group.waitForFailover(oldPort);
  expect(newPort).toBe(replicaPort);
  expect(await admin(newPort).xlen(`${env.REDIS_PREFIX}cmd`)).toBe(5);

  // Each lost command's client hears -32012 where it waits.
  for (const requestId of lost) {
    const error = await seed.next(
      (e) => e.event === 'mcp-error' && e.json.requestId === requestId,
      30_000,
    );
    expect((error.json.error as { code: number }).code).toBe(RPC_ERRORS.commandLost);
    expect((error.json.error as { message: string }).message).toMatch(/lost in a Redis failover/);
  }
  for (const [answer, id] of [
    [sessionAnswer, 'session-call'],
    [modernAnswer, 'modern-call'],
  ] as const) {
    const messages = await answer;
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ id, error: { code: RPC_ERRORS.commandLost } });
  }

  // A worker finishes what the new master kept: one result each, and nothing for the lost.
  await spawnRole('worker', { ...env, POD_ID: 'worker-after' });
  for (const requestId of survivors) {
    await seed.next((e) => e.event === 'tool-result' && e.json.requestId === requestId, 30_000);
  }
  // A last call through the same stream: whatever was still coming has arrived before it.
  const last = await callTool(gateway.url, team, seed, 'create_project', { name: 'last' }, 30_000);
  expect(last.event).toBe('tool-result');
  const finals = seed.events.filter(
    (e) =>
      (e.event === 'mcp-error' || (e.event === 'tool-result' && e.json.metadata === undefined)) &&
      e.json.requestId !== last.json.requestId,
  );
  const byRequest = (requestId: string) => finals.filter((e) => e.json.requestId === requestId);
  for (const requestId of survivors) {
    expect(byRequest(requestId).map((e) => e.event)).toEqual(['tool-result']);
  }
  for (const requestId of lost)
    expect(byRequest(requestId).map((e) => e.event)).toEqual(['mcp-error']);
  expect(finals).toHaveLength(survivors.length + lost.length);

  // The history lost the client's last event (tick 2): it cannot show what followed, so the
  // client is told, once; the broadcasts before and after reached it once each.
  const statuses = seed.named('connection-status').map((e) => e.json.status);
  expect(statuses).toEqual(['history-lost']);
  expect(seed.named('tick').map((e) => e.json.seq)).toEqual([1, 2]);

  const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
  expect(metrics).toMatch(/^mcpgw_commands_lost_total{role="gateway"} 7$/m);
}, 120_000);
