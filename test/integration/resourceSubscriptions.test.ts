/**
 * Issue 14, items 1 and 6: resource subscriptions and list changes of the backlog across pods,
 * as real MCP clients see them: the SDK 1.x Client (a 2025-11-25 session: resources/subscribe,
 * notifications on the session's GET stream) and `@modelcontextprotocol/client` 2.x pinned to
 * 2026-07-28 (subscriptions/listen with resourceSubscriptions), through a round-robin proxy over
 * two gateway processes, two workers and real Redis. Each change is made by a client connected
 * straight to the pod that does NOT hold the subscriber's stream, so every notification crossed
 * pods. Processes run the compiled dist/ (make builds it).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import {
  Client as ModernClient,
  StreamableHTTPClientTransport as ModernTransport,
  type McpSubscription,
} from '@modelcontextprotocol/client';
import { issueToken } from '../../shared/auth';
import { RPC_ERRORS } from '../../shared/protocol';
import { waitFor } from '../../devSupport/waitFor';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { callOk, rpcError, streamableTransport } from '../helpers/sdkClient';
import { startRoundRobinProxy, type RoundRobinProxy } from '../helpers/roundRobinProxy';
import { callTool as seedCall, openSseClient } from '../helpers/sseClient';

const SECRET = 'resource-subscriptions-secret-0123456789abcdef';
const team = (sub: string) => issueToken(SECRET, { type: 'team', sub, ttl: '1h' });
/** May read projects and actors (get_project_tree), not stories or features (get_story_tree). */
const projectsOnly = issueToken(SECRET, {
  type: 'team',
  sub: 'projects-only',
  ttl: '1h',
  tools: ['list_projects', 'get_project_tree'],
});

let cluster: TestCluster;
let proxy: RoundRobinProxy;
const closers: (() => Promise<unknown>)[] = [];
/** A 2025 writer connected straight to each gateway (index: the gateway's). */
let writers: Client[];
let project: { id: string };
let actor: { id: string };
let story: { id: string };
const uri = {
  project: () => `backlog://projects/${project.id}`,
  actor: () => `backlog://actors/${actor.id}`,
  story: () => `backlog://stories/${story.id}`,
};

beforeAll(async () => {
  cluster = await startCluster('resource-subs', { gateways: 2, workers: 2, jwtSecret: SECRET });
  proxy = await startRoundRobinProxy(cluster.gateways.map((g) => g.url));
  writers = await Promise.all(
    cluster.gateways.map((g) => connectLegacyEra(g.url, team('writer')).then((c) => c.client)),
  );
  project = await callOk(writers[0]!, 'create_project', { name: 'Harbour' });
  actor = await callOk(writers[0]!, 'add_actor', { projectId: project.id, name: 'Skipper' });
  story = await callOk(writers[1]!, 'add_story_to_actor', { actorId: actor.id, title: 'Moor' });
}, 60_000);

afterAll(async () => {
  await Promise.all(closers.splice(0).map((close) => close().catch(() => undefined)));
  await proxy?.close();
  await cluster?.stop();
});

/** A 2025-11-25 session (the SDK opens its GET stream after initialize). */
async function connectLegacyEra(base: string, token: string) {
  const transport = streamableTransport(base, token);
  const client = new Client({ name: 'resource-subscriptions-test', version: '1.0.0' });
  const updated: string[] = [];
  const listChanges: number[] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updated.push(n.params.uri);
  });
  client.setNotificationHandler(ResourceListChangedNotificationSchema, () => {
    listChanges.push(Date.now());
  });
  await client.connect(transport);
  closers.push(() => transport.terminateSession().then(() => client.close()));
  return { client, updated, listChanges };
}

/**
 * A 2025 session through the proxy, once its GET stream is open: returns which gateway holds
 * it (the proxy's log) and the notifications it got.
 */
async function subscriberSession(token: string) {
  const gets = () => proxy.log.filter((r) => r.method === 'GET' && r.path === '/mcp');
  const before = gets().length;
  const session = await connectLegacyEra(proxy.url, token);
  await waitFor(() => gets().length > before, 5000, 'the GET stream');
  const holder = gets()[before]!.target;
  // A creation through the other pod proves the stream is served (list_changed arrives on it).
  const seen = session.listChanges.length;
  await callOk(writers[1 - holder]!, 'create_project', { name: 'Probe' });
  await waitFor(() => session.listChanges.length > seen, 10_000, 'list_changed on the GET stream');
  return { ...session, other: writers[1 - holder]! };
}

/** A 2026-07-28 client through the proxy. */
async function connectModern(token: string) {
  const client = new ModernClient(
    { name: 'resource-subscriptions-test', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  const updated: string[] = [];
  const listChanges: number[] = [];
  client.setNotificationHandler('notifications/resources/updated', (n) => {
    updated.push(n.params.uri);
  });
  client.setNotificationHandler('notifications/resources/list_changed', () => {
    listChanges.push(Date.now());
  });
  await client.connect(
    new ModernTransport(new URL(`${proxy.url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  closers.push(() => client.close());
  return { client, updated, listChanges };
}

/** Listens; returns the subscription and the writer on the pod not holding its stream. */
async function listen(client: ModernClient, filter: Parameters<ModernClient['listen']>[0]) {
  const before = proxy.log.length;
  const subscription: McpSubscription = await client.listen(filter);
  const entry = proxy.log.slice(before).find((r) => r.body.includes('subscriptions/listen'));
  expect(entry).toBeDefined();
  closers.push(() => subscription.close());
  return { subscription, other: writers[1 - entry!.target]! };
}

describe('2025-11-25 sessions: resources/subscribe, updates on the GET stream', () => {
  it('advertises subscriptions and resource list changes; tools and prompts never change', () => {
    expect(writers[0]!.getServerCapabilities()).toMatchObject({
      tools: { listChanged: false },
      resources: { subscribe: true, listChanged: true },
      prompts: { listChanged: false },
    });
  });

  it('a subscription made through any pod sees a change made through the other pod, until unsubscribed', async () => {
    const session = await subscriberSession(team('subscriber'));
    await session.client.subscribeResource({ uri: uri.story() });
    await session.client.subscribeResource({ uri: uri.project() });
    // Both subscribe requests went through the proxy: one per pod.
    const subscribes = proxy.log.filter((r) => r.body.includes('"resources/subscribe"'));
    expect(new Set(subscribes.slice(-2).map((r) => r.target)).size).toBe(2);

    await callOk(session.other, 'update_story', { storyId: story.id, status: 'in_progress' });
    await waitFor(() => session.updated.length >= 2, 10_000, 'the story and project updates');
    // One event carries the change's URIs: the story, its actor (not subscribed), its project.
    expect(session.updated).toEqual([uri.story(), uri.project()]);

    await session.client.unsubscribeResource({ uri: uri.story() });
    session.updated.length = 0;
    await callOk(session.other, 'update_story', { storyId: story.id, status: 'done' });
    await waitFor(() => session.updated.length >= 1, 10_000, 'the project update');
    expect(session.updated).toEqual([uri.project()]);

    // A feature added under the story touches the project too (its tree holds it).
    session.updated.length = 0;
    await callOk(session.other, 'add_feature_to_story', { storyId: story.id, title: 'Lines' });
    await waitFor(() => session.updated.length >= 1, 10_000, 'the project update');
    expect(session.updated).toEqual([uri.project()]);
  });

  it("a change made through the seed API reaches the session's subscription", async () => {
    const session = await subscriberSession(team('seed-watcher'));
    await session.client.subscribeResource({ uri: uri.story() });
    const other = cluster.gateways[writers.indexOf(session.other)]!.url;
    const seed = await openSseClient(other, team('seed-writer'));
    closers.push(async () => seed.close());
    const result = await seedCall(other, team('seed-writer'), seed, 'update_story', {
      storyId: story.id,
      description: 'Through /mcp/sse/send',
    });
    expect(result.event).toBe('tool-result');
    await waitFor(() => session.updated.length >= 1, 10_000, 'the story update');
    expect(session.updated).toEqual([uri.story()]);
  });

  it('a legacy /sse session subscribes too; its stream carries the updates', async () => {
    const transport = new SSEClientTransport(new URL(`${cluster.gateways[0]!.url}/sse`), {
      requestInit: { headers: { Authorization: `Bearer ${team('legacy')}` } },
      eventSourceInit: {
        fetch: (input, init) =>
          fetch(input, {
            ...init,
            headers: { ...init?.headers, Authorization: `Bearer ${team('legacy')}` },
          }),
      },
    });
    const client = new Client({ name: 'resource-subscriptions-legacy', version: '1.0.0' });
    const updated: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updated.push(n.params.uri);
    });
    await client.connect(transport);
    closers.push(() => client.close());
    await client.subscribeResource({ uri: uri.actor() });
    await callOk(writers[1]!, 'add_story_to_actor', { actorId: actor.id, title: 'Cast off' });
    await waitFor(() => updated.length >= 1, 10_000, 'the actor update');
    expect(updated).toEqual([uri.actor()]);
  });

  it('a creation is a list change on every session stream', async () => {
    const session = await subscriberSession(team('lister'));
    const seen = session.listChanges.length;
    await callOk(session.other, 'add_actor', { projectId: project.id, name: 'Harbour master' });
    await waitFor(() => session.listChanges.length > seen, 10_000, 'list_changed');
    expect(session.updated).toEqual([]);
  });

  it('a token cannot subscribe to what it cannot read; bad URIs get -32602', async () => {
    const session = await connectLegacyEra(proxy.url, projectsOnly);
    const denied = await rpcError(session.client.subscribeResource({ uri: uri.story() }));
    expect(denied.code).toBe(RPC_ERRORS.permissionDenied);
    const unknown = await rpcError(
      session.client.subscribeResource({ uri: 'backlog://projects/prj_nope' }),
    );
    expect(unknown.code).toBe(RPC_ERRORS.invalidParams);
    expect(unknown.data).toEqual({ uri: 'backlog://projects/prj_nope' });
    const long = await rpcError(
      session.client.subscribeResource({ uri: `backlog://projects/${'x'.repeat(3000)}` }),
    );
    expect(long.code).toBe(RPC_ERRORS.invalidParams);
    await expect(session.client.subscribeResource({ uri: uri.project() })).resolves.toEqual({});
  });
});

describe('2026-07-28: subscriptions/listen with resourceSubscriptions', () => {
  it('a listen on one pod sees a change made through the other pod; a new listen without the URI does not', async () => {
    const { client, updated, listChanges } = await connectModern(team('listener'));
    const first = await listen(client, {
      resourceSubscriptions: [uri.story()],
      resourcesListChanged: true,
    });
    expect(first.subscription.honoredFilter).toEqual({
      resourceSubscriptions: [uri.story()],
      resourcesListChanged: true,
    });
    await callOk(first.other, 'update_story', { storyId: story.id, priority: 'high' });
    await waitFor(() => updated.length >= 1, 10_000, 'the story update');
    expect(updated).toEqual([uri.story()]);
    await callOk(first.other, 'create_project', { name: 'Dock' });
    await waitFor(() => listChanges.length >= 1, 10_000, 'list_changed');

    // Unsubscribing is listening without it: the old stream closed, the new one names the actor.
    await first.subscription.close();
    updated.length = 0;
    const second = await listen(client, { resourceSubscriptions: [uri.actor()] });
    await callOk(second.other, 'update_story', { storyId: story.id, priority: 'low' });
    await waitFor(() => updated.length >= 1, 10_000, 'the actor update');
    expect(updated).toEqual([uri.actor()]);
  });

  it('a token that cannot read a resource is not subscribed to it, and hears nothing of it', async () => {
    const { client, updated } = await connectModern(projectsOnly);
    const { subscription, other } = await listen(client, {
      resourceSubscriptions: [uri.story(), uri.project(), 'backlog://stories/sty_nope'],
    });
    // Only the project: the story needs get_story_tree, the other story does not exist.
    expect(subscription.honoredFilter).toEqual({ resourceSubscriptions: [uri.project()] });
    await callOk(other, 'update_story', { storyId: story.id, title: 'Moor safely' });
    await waitFor(() => updated.length >= 1, 10_000, 'the project update');
    expect(updated).toEqual([uri.project()]);
  });
});

// Last: it kills a gateway of the shared cluster.
describe("a pod's death", () => {
  it('the subscriptions live in the engine: after a SIGKILL of the pod holding the GET stream, the reconnected stream on the other pod gets the updates', async () => {
    const gets = () => proxy.log.filter((r) => r.method === 'GET' && r.path === '/mcp');
    const before = gets().length;
    // The SDK's default reconnection: the GET stream comes back on the surviving pod.
    const transport = new StreamableHTTPClientTransport(new URL(`${proxy.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${team('survivor')}` } },
    });
    const client = new Client({ name: 'resource-subscriptions-death', version: '1.0.0' });
    const updated: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updated.push(n.params.uri);
    });
    await client.connect(transport);
    closers.push(() => client.close());
    await waitFor(() => gets().length > before, 5000, 'the GET stream');
    const holder = gets()[before]!.target;
    await client.subscribeResource({ uri: uri.story() });

    await cluster.gateways[holder]!.kill('SIGKILL');
    const survivor = writers[1 - holder]!;
    await waitFor(() => gets().length > before + 1, 15_000, 'the GET stream reconnected');
    expect(gets().at(-1)!.target).toBe(1 - holder);
    // The client cannot see when the new pod has read the session's subscriptions: change the
    // story until an update arrives (each attempt waits for it).
    for (let attempt = 1; updated.length === 0; attempt += 1) {
      await callOk(survivor, 'update_story', { storyId: story.id, title: `Moor ${attempt}` });
      await waitFor(() => updated.length > 0, 1000, 'an update').catch((err: unknown) => {
        if (attempt >= 15) throw err;
      });
    }
    expect(new Set(updated)).toEqual(new Set([uri.story()]));
  }, 60_000);
});
