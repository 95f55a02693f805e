import { ResourceTemplate, type McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  ErrorCode,
  ListResourcesRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type ListResourcesResult,
  type ReadResourceResult,
  type Resource,
  type TextResourceContents,
} from '@modelcontextprotocol/sdk/types.js';
import { mayCallTool } from '../../shared/auth';
import { RPC_ERRORS } from '../../shared/protocol';
import { BacklogError } from '../backlog/errors';
import type { Feature, Project } from '../backlog/model';
import type { BacklogStore } from '../backlog/store';
import type { BacklogCompleters } from './backlogCompletion';
import { actorMarkdown, featureMarkdown, projectMarkdown, storyMarkdown } from './format';
import { installedHandler } from './installedHandler';
import { toolAllowListOf, type HandlerContext } from './requestContext';

/** The kinds of backlog resource, by the path segment of their URI. */
export const RESOURCE_KINDS = {
  projects: { kind: 'project', variable: 'projectId', readTool: 'get_project_tree' },
  actors: { kind: 'actor', variable: 'actorId', readTool: 'get_project_tree' },
  stories: { kind: 'story', variable: 'storyId', readTool: 'get_story_tree' },
  features: { kind: 'feature', variable: 'featureId', readTool: 'get_story_tree' },
} as const;
type Collection = keyof typeof RESOURCE_KINDS;

/** resources/list pages hold at most this many resources. */
export const RESOURCE_PAGE_SIZE = 50;

/** The tool a token must be allowed to call to list resources (its allow-list, if any). */
const LIST_TOOL = 'list_projects';

const URI_PATTERN = /^backlog:\/\/(projects|actors|stories|features)\/([\w-]{1,200})$/;

const NOT_OURS = 'backlog URIs are backlog://{projects|actors|stories|features}/{id}';

export function backlogUri(collection: Collection, id: string): string {
  return `backlog://${collection}/${id}`;
}

/** The collection a backlog URI names, or undefined for another URI. */
export function resourceCollectionOf(uri: string): Collection | undefined {
  const match = URI_PATTERN.exec(uri);
  return match ? (match[1] as Collection) : undefined;
}

/**
 * The backlog as MCP resources: `backlog://projects/{projectId}`, `backlog://actors/{actorId}`,
 * `backlog://stories/{storyId}` and `backlog://features/{featureId}`, each read as the entity's
 * JSON plus a markdown rendering.
 *
 * The templates are registered on the McpServer (resources/templates/list, and their
 * completion); resources/list and resources/read get handlers of their own: the SDK's list
 * ignores the cursor and its read reports an unknown URI without `data.uri` (SEP-2164).
 */
export function registerBacklogResources(
  server: McpServer,
  store: BacklogStore,
  completers: BacklogCompleters,
): void {
  const complete = {
    projects: { projectId: completers.projectId },
    actors: { actorId: completers.actorId },
    stories: { storyId: completers.storyId },
    features: { featureId: completers.featureId },
  };
  const described: Record<Collection, { title: string; description: string }> = {
    projects: {
      title: 'Project',
      description: 'A project with its whole tree: actors, their stories, their features.',
    },
    actors: { title: 'Actor', description: 'An actor (user role) with its stories.' },
    stories: {
      title: 'Story',
      description: 'A user story with its features, its actor and project ids.',
    },
    features: {
      title: 'Feature',
      description: 'A feature with its child features, its story and project ids.',
    },
  };
  for (const collection of Object.keys(RESOURCE_KINDS) as Collection[]) {
    const { kind, variable } = RESOURCE_KINDS[collection];
    server.registerResource(
      kind,
      new ResourceTemplate(`backlog://${collection}/{${variable}}`, {
        list: undefined,
        complete: complete[collection],
      }),
      { ...described[collection], mimeType: 'application/json' },
      // Never reached: the resources/read handler below replaces the SDK's.
      (uri) => readBacklogResource(store, uri.href),
    );
  }

  // Resources registered on the McpServer beside these (the conformance fixtures do) stay
  // served: non-backlog URIs go to the SDK's handlers, which read its registry at call time.
  const sdkList = installedHandler(server, 'resources/list');
  const sdkRead = installedHandler(server, 'resources/read');

  server.server.setRequestHandler(ListResourcesRequestSchema, async (request, extra) => {
    assertMayRead(extra, LIST_TOOL);
    const cursor = request.params?.cursor;
    const page = await listBacklogResources(store, cursor);
    if (cursor !== undefined) return page;
    // The other registrations (static, none in production) head the first page.
    const others = (await sdkList(request, extra)) as ListResourcesResult;
    return { ...page, resources: [...others.resources, ...page.resources] };
  });
  server.server.setRequestHandler(ReadResourceRequestSchema, async (request, extra) => {
    const { uri } = request.params;
    const match = URI_PATTERN.exec(uri);
    if (match) {
      assertMayRead(extra, RESOURCE_KINDS[match[1] as Collection].readTool);
      return readBacklogResource(store, uri);
    }
    if (uri.startsWith('backlog:') || !URL.canParse(uri)) throw resourceNotFound(uri, NOT_OURS);
    try {
      return (await sdkRead(request, extra)) as ReadResourceResult;
    } catch (err) {
      // The SDK's "Resource ... not found" carries no data.uri (SEP-2164 asks for it).
      if (err instanceof McpError && err.code === ErrorCode.InvalidParams && !err.data) {
        throw resourceNotFound(uri, 'no such resource');
      }
      throw err;
    }
  });
}

/**
 * One resources/list page: projects in id order, each followed by its tree (actors, each
 * followed by its stories, each followed by its features depth first). Reads at most one
 * project document per resource listed, and never more than RESOURCE_PAGE_SIZE + 1.
 */
export async function listBacklogResources(
  store: BacklogStore,
  cursor: string | undefined,
): Promise<ListResourcesResult> {
  const resources: Resource[] = [];
  const position = decodeResourceCursor(cursor);
  let afterId: string | undefined;
  if (position) {
    const project = await store.findProject(position.projectId);
    if (project) {
      const entries = projectResources(project);
      const taken = entries.slice(position.offset, position.offset + RESOURCE_PAGE_SIZE);
      resources.push(...taken);
      const offset = position.offset + taken.length;
      if (offset < entries.length) {
        return { resources, nextCursor: encodeResourceCursor(project.id, offset) };
      }
    }
    afterId = position.projectId;
  }
  while (resources.length < RESOURCE_PAGE_SIZE) {
    const page = await store.pageProjects({
      afterId,
      limit: RESOURCE_PAGE_SIZE - resources.length,
    });
    for (const project of page.projects) {
      const entries = projectResources(project);
      const room = RESOURCE_PAGE_SIZE - resources.length;
      resources.push(...entries.slice(0, room));
      if (entries.length > room) {
        return { resources, nextCursor: encodeResourceCursor(project.id, room) };
      }
    }
    if (!page.nextAfterId) return { resources };
    afterId = page.nextAfterId;
  }
  // Full at a project's end, with more projects after it.
  return afterId === undefined
    ? { resources }
    : { resources, nextCursor: encodeResourceCursor(afterId, Number.MAX_SAFE_INTEGER) };
}

/**
 * resources/read of a backlog URI: the entity as JSON, then as markdown. A URI that is not a
 * backlog one, or names no entity, is the -32602 error SEP-2164 asks for, with `data.uri`.
 */
export async function readBacklogResource(
  store: BacklogStore,
  uri: string,
): Promise<ReadResourceResult> {
  const match = URI_PATTERN.exec(uri);
  if (!match) throw resourceNotFound(uri, NOT_OURS);
  const [, collection, id] = match as unknown as [string, Collection, string];
  try {
    switch (collection) {
      case 'projects': {
        const project = await store.getProject(id);
        return contents(uri, project, projectMarkdown(project));
      }
      case 'actors': {
        const actor = await store.getActor(id);
        return contents(uri, actor, actorMarkdown(actor));
      }
      case 'stories': {
        const story = await store.getStory(id);
        return contents(uri, story, storyMarkdown(story));
      }
      case 'features': {
        const feature = await store.getFeature(id);
        return contents(uri, feature, featureMarkdown(feature));
      }
    }
  } catch (err) {
    if (err instanceof BacklogError) throw resourceNotFound(uri, err.message);
    throw err;
  }
}

export function resourceNotFound(uri: string, why: string): McpError {
  return new McpError(ErrorCode.InvalidParams, `Resource not found: ${uri} (${why})`, { uri });
}

/**
 * Resource reads follow the read tools' rule: any token may read (readonly ones included),
 * unless its tool allow-list leaves out the tool that reads the same thing.
 */
export function assertMayRead(extra: HandlerContext, readTool: string): void {
  const tools = toolAllowListOf(extra);
  if (mayCallTool({ sub: '', type: 'readonly', ...(tools ? { tools } : {}) }, readTool, true)) {
    return;
  }
  throw new McpError(
    RPC_ERRORS.permissionDenied,
    `Permission denied: reading this needs tool ${readTool} in this token's allow-list`,
  );
}

function contents(uri: string, entity: object, markdown: string): ReadResourceResult {
  return {
    contents: [jsonContent(uri, entity), { uri, mimeType: 'text/markdown', text: markdown }],
  };
}

/** A resource's JSON content, as resources/read gives it first and prompts embed it. */
export function jsonContent(uri: string, entity: object): TextResourceContents {
  return { uri, mimeType: 'application/json', text: JSON.stringify(entity, null, 2) };
}

/** A project's resources in list order: the project, then its tree depth first. */
function projectResources(project: Project): Resource[] {
  const listed: Resource[] = [
    entry('projects', project.id, project.name, `Project "${project.name}"`),
  ];
  for (const actor of project.actors) {
    listed.push(entry('actors', actor.id, actor.name, `Actor "${actor.name}" of ${project.name}`));
    for (const story of actor.stories) {
      listed.push(
        entry('stories', story.id, story.title, `Story "${story.title}" of ${actor.name}`),
      );
      const addFeatures = (features: Feature[]) => {
        for (const feature of features) {
          listed.push(
            entry(
              'features',
              feature.id,
              feature.title,
              `Feature "${feature.title}" of story ${story.id}`,
            ),
          );
          addFeatures(feature.children);
        }
      };
      addFeatures(story.features);
    }
  }
  return listed;
}

function entry(collection: Collection, id: string, name: string, title: string): Resource {
  return { uri: backlogUri(collection, id), name, title, mimeType: 'application/json' };
}

/** Where a resources/list page resumes: within (or after) a project, at an offset in its tree. */
interface ResourceCursor {
  projectId: string;
  offset: number;
}

function encodeResourceCursor(projectId: string, offset: number): string {
  return Buffer.from(JSON.stringify([projectId, offset]), 'utf8').toString('base64url');
}

function decodeResourceCursor(cursor: string | undefined): ResourceCursor | undefined {
  if (cursor === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) &&
      parsed.length === 2 &&
      typeof parsed[0] === 'string' &&
      /^[\w-]{1,200}$/.test(parsed[0]) &&
      Number.isSafeInteger(parsed[1]) &&
      (parsed[1] as number) >= 0 &&
      encodeResourceCursor(parsed[0], parsed[1] as number) === cursor
    ) {
      return { projectId: parsed[0], offset: parsed[1] as number };
    }
  } catch {
    // Falls through to the error below.
  }
  throw new McpError(ErrorCode.InvalidParams, 'Invalid cursor: pass nextCursor as returned');
}
