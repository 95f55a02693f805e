import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { BacklogChange, BacklogStore, EntityRef } from '../backlog/store';
import type { EntityKind } from '../backlog/model';
import {
  RESOURCE_KINDS,
  assertMayRead,
  backlogUri,
  readBacklogResource,
  resourceCollectionOf,
} from './backlogResources';

const COLLECTION_OF: Record<EntityKind, keyof typeof RESOURCE_KINDS> = {
  project: 'projects',
  actor: 'actors',
  story: 'stories',
  feature: 'features',
};

/** The URI of a backlog entity's resource. */
export function entityUri(entity: EntityRef): string {
  return backlogUri(COLLECTION_OF[entity.kind], entity.id);
}

/**
 * Resource subscriptions of the backlog server, and the notifications they wait for.
 *
 * - `resources/subscribe` accepts a backlog URI naming an entity the token may read (the
 *   resources/read rule), else the error resources/read would give (-32602 with `data.uri`,
 *   -32011): a token cannot subscribe to what it cannot read. It keeps nothing: the transport
 *   keeps the subscription, cluster-wide (worker/mcpTransports/resourceSubscriptions.ts), and
 *   asks this handler for every URI a 2026-07-28 listen names. `resources/unsubscribe` accepts
 *   any URI.
 * - Every mutation of the store (whichever tool, whichever API) emits, about no request,
 *   `notifications/resources/updated` for each entity that reads differently (the changed one
 *   and those whose tree holds it: parent features, story, actor, project) and, when it created
 *   an entity, `notifications/resources/list_changed` (resources/list lists every entity). The
 *   transport publishes them together, once, for every subscriber on every pod.
 */
export function registerBacklogSubscriptions(server: McpServer, store: BacklogStore): void {
  server.server.setRequestHandler(SubscribeRequestSchema, async (request, extra) => {
    const { uri } = request.params;
    const collection = resourceCollectionOf(uri);
    if (collection) assertMayRead(extra, RESOURCE_KINDS[collection].readTool);
    // Refuses a URI that is not a backlog one, or names no entity, as resources/read does.
    await readBacklogResource(store, uri);
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, () => ({}));

  store.onChange((change) => announce(server, change));
}

function announce(server: McpServer, change: BacklogChange): void {
  if (!server.isConnected()) return;
  // Sent together, in one task: the transport publishes them as one event.
  for (const entity of change.changed) {
    server.server.sendResourceUpdated({ uri: entityUri(entity) }).catch(() => undefined);
  }
  if (change.created) server.server.sendResourceListChanged().catch(() => undefined);
}
