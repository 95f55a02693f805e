import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CompleteRequestSchema, type CompleteResult } from '@modelcontextprotocol/sdk/types.js';
import type { EntityKind } from '../backlog/model';
import type { BacklogStore } from '../backlog/store';
import { assertMayRead } from './backlogResources';
import { installedHandler } from './installedHandler';

/** completion/complete returns at most this many values (the MCP limit). */
export const MAX_COMPLETION_VALUES = 100;

/**
 * The SDK's completer signature (completable() and ResourceTemplate's `complete`): the typed
 * value, and the other arguments already given.
 */
export type Completer = (
  value: string,
  context?: { arguments?: Record<string, string> },
) => Promise<string[]>;

/**
 * The backlog's completers. Each returns up to MAX_COMPLETION_VALUES + 1 values: the SDK sends
 * the first 100, with hasMore when there is one more and total = the values found. Every one
 * reads a bounded amount: one project document, or one page of an index from the prefix on.
 */
export interface BacklogCompleters {
  /** Project ids starting with the value, then ids of projects whose name starts with it. */
  projectId: Completer;
  /** Names of the actors of context.arguments.projectId starting with the value. */
  actorName: Completer;
  actorId: Completer;
  storyId: Completer;
  featureId: Completer;
}

const WANTED = MAX_COMPLETION_VALUES + 1;

export function backlogCompleters(store: BacklogStore): BacklogCompleters {
  const idsOf = async (kind: EntityKind, value: string) =>
    (await store.idsByPrefix(kind, value, WANTED)).matches;

  /** The project named by context.arguments.projectId, when it names one. */
  const contextProject = async (context?: { arguments?: Record<string, string> }) => {
    const projectId = context?.arguments?.projectId;
    return projectId ? store.findProject(projectId) : undefined;
  };

  return {
    projectId: async (value) => {
      const byId = await idsOf('project', value);
      if (byId.length >= WANTED) return byId;
      const byName = await store.projectsByNamePrefix(value, WANTED);
      const ids = new Set(byId);
      for (const entry of byName.matches) ids.add(entry.projectId);
      return [...ids].slice(0, WANTED);
    },
    actorName: async (value, context) => {
      const project = await contextProject(context);
      if (!project) return [];
      const typed = value.toLowerCase();
      return project.actors
        .map((actor) => actor.name)
        .filter((name) => name.toLowerCase().startsWith(typed))
        .slice(0, WANTED);
    },
    actorId: async (value, context) => {
      const project = await contextProject(context);
      if (!project) return idsOf('actor', value);
      return project.actors
        .map((actor) => actor.id)
        .filter((id) => id.startsWith(value))
        .slice(0, WANTED);
    },
    storyId: async (value, context) => {
      const project = await contextProject(context);
      if (!project) return idsOf('story', value);
      return project.actors
        .flatMap((actor) => actor.stories.map((story) => story.id))
        .filter((id) => id.startsWith(value))
        .slice(0, WANTED);
    },
    featureId: (value) => idsOf('feature', value),
  };
}

/**
 * completion/complete tells ids and names, as list_projects does: a token whose tool allow-list
 * leaves that tool out gets -32011, as for resources/list. Wraps the SDK's handler (which
 * dispatches to the completers), so call it once every completer is registered.
 */
export function guardCompletion(server: McpServer): void {
  const sdkComplete = installedHandler(server, 'completion/complete');
  server.server.setRequestHandler(CompleteRequestSchema, async (request, extra) => {
    assertMayRead(extra, 'list_projects');
    return (await sdkComplete(request, extra)) as CompleteResult;
  });
}
