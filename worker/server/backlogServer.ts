import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  ErrorCode,
  McpError,
  type CallToolResult,
  type ServerNotification,
  type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import { BacklogError } from '../backlog/errors';
import type { BacklogStore } from '../backlog/store';
import { backlogCompleters, guardCompletion } from './backlogCompletion';
import { toolLog, type ToolLog } from './backlogLogging';
import { registerBacklogPrompts } from './backlogPrompts';
import { registerBacklogResources } from './backlogResources';
import { registerBacklogSubscriptions } from './backlogSubscriptions';
import { describeProjectList, outlineFeature, outlineProject, outlineStory } from './format';
import { idempotencyKeyOf, ownerOf } from './requestContext';
import * as s from './schemas';
import { TASKS_EXTENSION } from '../../shared/mcpTasks';

/** `_meta` key set on an isError result caused by a failure outside the tool's domain. */
export const INFRASTRUCTURE_FAILURE_META = 'io.mcpgw/infrastructure-failure';

export const BACKLOG_SERVER_INFO = { name: 'project-backlog', version: '0.1.0' } as const;

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * The project's one MCP server definition: the backlog tools over a BacklogStore, and the
 * backlog as resources (backlogResources.ts), prompts (backlogPrompts.ts) and completion of
 * their ids and names (backlogCompletion.ts). Served to
 * seed-API commands through the worker's in-process transport, and over Streamable HTTP too.
 *
 * Results carry a text summary and structuredContent (matching each tool's outputSchema).
 * Unknown ids come back as isError results naming the id; inputs failing the zod schemas are
 * reported by the SDK as isError results starting "MCP error -32602: Input validation error".
 * Mutating tools take their idempotency key from the request (see requestContext.ts).
 */
export function createBacklogServer(store: BacklogStore): McpServer {
  const server = new McpServer(BACKLOG_SERVER_INFO, {
    // logging: the tools send log messages as they work (on the call's own stream).
    capabilities: { tools: {}, logging: {} },
    instructions:
      'A project backlog: projects have actors, actors have stories, stories have features ' +
      '(which may have child features). Create a project first, then add to its tree.',
  });
  const reads = { readOnlyHint: true, openWorldHint: false } as const;
  const writes = { readOnlyHint: false, destructiveHint: false, openWorldHint: false } as const;

  server.registerTool(
    'list_projects',
    {
      title: 'List projects',
      description:
        'Lists projects with counts of their actors, stories and features, one page at a time ' +
        '(in id order). When hasMore is true, call again with cursor = nextCursor.',
      inputSchema: s.listProjectsInput,
      outputSchema: s.projectListOutput,
      annotations: reads,
    },
    ({ cursor, limit }, extra) =>
      run(toolLog(extra, 'list_projects'), async () => {
        const page = await store.listProjects({ afterId: decodeCursor(cursor), limit });
        const nextCursor = page.nextAfterId && encodeCursor(page.nextAfterId);
        return ok(describeProjectList(page.projects, nextCursor), {
          hasMore: nextCursor !== undefined,
          ...(nextCursor ? { nextCursor } : {}),
          projects: page.projects,
        });
      }),
  );

  server.registerTool(
    'create_project',
    {
      title: 'Create project',
      description: 'Creates a project. Returns the project with its id.',
      inputSchema: s.createProjectInput,
      outputSchema: s.projectOutput,
      annotations: writes,
    },
    (args, extra) =>
      run(toolLog(extra, 'create_project'), async (log) => {
        const project = await store.createProject(idempotencyKeyOf(extra), args, ownerOf(extra));
        await log('info', {
          message: `Created project "${project.name}" (${project.id})`,
          projectId: project.id,
        });
        return ok(`Created project "${project.name}" (${project.id})`, project);
      }),
  );

  server.registerTool(
    'get_project_tree',
    {
      title: 'Get project tree',
      description: "Returns a project with its actors, their stories and the stories' features.",
      inputSchema: s.projectIdInput,
      outputSchema: s.projectOutput,
      annotations: reads,
    },
    ({ projectId }, extra) =>
      run(toolLog(extra, 'get_project_tree'), async () => {
        const project = await store.getProject(projectId);
        return ok(outlineProject(project), project);
      }),
  );

  server.registerTool(
    'add_actor',
    {
      title: 'Add actor',
      description: 'Adds an actor (a user role, e.g. "Customer") to a project.',
      inputSchema: s.addActorInput,
      outputSchema: s.actorOutput,
      annotations: writes,
    },
    ({ projectId, ...input }, extra) =>
      run(toolLog(extra, 'add_actor'), async (log) => {
        const actor = await store.addActor(
          idempotencyKeyOf(extra),
          projectId,
          input,
          ownerOf(extra),
        );
        await log('info', {
          message: `Added actor "${actor.name}" (${actor.id}) to project ${projectId}`,
          projectId,
          actorId: actor.id,
        });
        return ok(`Added actor "${actor.name}" (${actor.id}) to project ${projectId}`, actor);
      }),
  );

  server.registerTool(
    'add_story_to_actor',
    {
      title: 'Add story to actor',
      description: 'Adds a user story to an actor.',
      inputSchema: s.addStoryInput,
      outputSchema: s.storyOutput,
      annotations: writes,
    },
    ({ actorId, ...input }, extra) =>
      run(toolLog(extra, 'add_story_to_actor'), async (log) => {
        const story = await store.addStory(idempotencyKeyOf(extra), actorId, input, ownerOf(extra));
        await log('info', {
          message: `Added story "${story.title}" (${story.id}) to actor ${actorId}`,
          actorId,
          storyId: story.id,
        });
        return ok(`Added story "${story.title}" (${story.id}) to actor ${actorId}`, story);
      }),
  );

  server.registerTool(
    'get_story_tree',
    {
      title: 'Get story tree',
      description: 'Returns a story with its features and their child features.',
      inputSchema: s.storyIdInput,
      outputSchema: s.storyOutput,
      annotations: reads,
    },
    ({ storyId }, extra) =>
      run(toolLog(extra, 'get_story_tree'), async () => {
        const story = await store.getStory(storyId);
        return ok(outlineStory(story), story);
      }),
  );

  server.registerTool(
    'update_story',
    {
      title: 'Update story',
      description: "Changes a story's title, description, status or priority (only those given).",
      inputSchema: s.updateStoryInput,
      outputSchema: s.storyOutput,
      annotations: { ...writes, idempotentHint: true },
    },
    ({ storyId, ...patch }, extra) =>
      run(toolLog(extra, 'update_story'), async (log) => {
        const fields = Object.keys(patch).filter(
          (k) => patch[k as keyof typeof patch] !== undefined,
        );
        if (fields.length === 0) {
          throw new McpError(
            ErrorCode.InvalidParams,
            'update_story needs at least one of title, description, status, priority',
          );
        }
        const story = await store.updateStory(idempotencyKeyOf(extra), storyId, patch);
        await log('info', {
          message: `Updated story ${story.id} (${fields.join(', ')})`,
          storyId: story.id,
          fields,
        });
        return ok(
          `Updated story ${story.id} (${fields.join(', ')})\n${outlineStory(story)}`,
          story,
        );
      }),
  );

  server.registerTool(
    'add_feature_to_story',
    {
      title: 'Add feature to story',
      description: 'Adds a feature to a story.',
      inputSchema: s.addFeatureInput,
      outputSchema: s.featureOutput,
      annotations: writes,
    },
    ({ storyId, ...input }, extra) =>
      run(toolLog(extra, 'add_feature_to_story'), async (log) => {
        const feature = await store.addFeature(
          idempotencyKeyOf(extra),
          storyId,
          input,
          ownerOf(extra),
        );
        await log('info', {
          message: `Added feature "${feature.title}" (${feature.id}) to story ${storyId}`,
          storyId,
          featureId: feature.id,
        });
        return ok(`Added feature "${feature.title}" (${feature.id}) to story ${storyId}`, feature);
      }),
  );

  server.registerTool(
    'add_child_feature',
    {
      title: 'Add child feature',
      description: 'Adds a feature under another feature.',
      inputSchema: s.addChildFeatureInput,
      outputSchema: s.featureOutput,
      annotations: writes,
    },
    ({ parentFeatureId, ...input }, extra) =>
      run(toolLog(extra, 'add_child_feature'), async (log) => {
        const feature = await store.addChildFeature(
          idempotencyKeyOf(extra),
          parentFeatureId,
          input,
          ownerOf(extra),
        );
        await log('info', {
          message: `Added feature "${feature.title}" (${feature.id}) under feature ${parentFeatureId}`,
          parentFeatureId,
          featureId: feature.id,
        });
        return ok(
          `Added feature "${feature.title}" (${feature.id}) under feature ${parentFeatureId}\n` +
            outlineFeature(feature),
          feature,
        );
      }),
  );

  server.registerTool(
    'simulate_work',
    {
      title: 'Simulate work',
      description:
        'A long-running task: works through `steps` steps of `delayMs` each, reporting MCP ' +
        'progress after every step. Stops early when the request is cancelled.',
      inputSchema: s.simulateWorkInput,
      outputSchema: s.simulateWorkOutput,
      annotations: reads,
      // Long-running: in 2026-07-28 a client that declares the Tasks extension gets a task.
      _meta: { [TASKS_EXTENSION]: { taskSupport: 'optional' } },
    },
    ({ steps, delayMs }, extra) => simulateWork(steps, delayMs, extra),
  );

  const completers = backlogCompleters(store);
  registerBacklogResources(server, store, completers);
  registerBacklogPrompts(server, store, completers);
  registerBacklogSubscriptions(server, store);
  guardCompletion(server);
  // The SDK advertises listChanged for tools and prompts once one is registered: the backlog's
  // never change at run time, so it is false. Resources: subscriptions and list changes are
  // delivered across pods (backlogSubscriptions.ts).
  server.server.registerCapabilities({
    tools: { listChanged: false },
    resources: { listChanged: true, subscribe: true },
    prompts: { listChanged: false },
  });

  return server;
}

async function simulateWork(steps: number, delayMs: number, extra: Extra): Promise<CallToolResult> {
  const progressToken = extra._meta?.progressToken;
  const log = toolLog(extra, 'simulate_work');
  let completedSteps = 0;
  while (completedSteps < steps && !extra.signal.aborted) {
    await sleep(delayMs, extra.signal);
    if (extra.signal.aborted) break;
    completedSteps += 1;
    await log('debug', {
      message: `Step ${completedSteps} of ${steps} done`,
      step: completedSteps,
    });
    if (progressToken !== undefined) {
      await extra.sendNotification({
        method: 'notifications/progress',
        params: {
          progressToken,
          progress: completedSteps,
          total: steps,
          message: `Step ${completedSteps} of ${steps}`,
        },
      });
    }
  }
  const cancelled = completedSteps < steps;
  const text = cancelled
    ? `Cancelled after ${completedSteps} of ${steps} steps`
    : `Completed ${steps} steps`;
  await log(cancelled ? 'warning' : 'info', { message: text, steps, completedSteps });
  return ok(text, { steps, completedSteps, cancelled });
}

/** Resolves after ms, or as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** An opaque cursor: the last id of the page, base64url. */
function encodeCursor(afterId: string): string {
  return Buffer.from(afterId, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const afterId = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^[\w-]{1,200}$/.test(afterId) || encodeCursor(afterId) !== cursor) {
    throw new McpError(ErrorCode.InvalidParams, 'Invalid cursor: pass nextCursor as returned');
  }
  return afterId;
}

function ok(text: string, structuredContent: object): CallToolResult {
  return {
    content: [{ type: 'text', text }],
    structuredContent: structuredContent as Record<string, unknown>,
  };
}

/**
 * Failures are logged to the client (a warning for the caller's mistakes, an error for the
 * store's). Domain errors (unknown ids) become isError results; McpErrors go to the SDK (which reports
 * them as "MCP error <code>: ..." results). Anything else (the store unreachable, a bug) is an
 * isError result flagged with INFRASTRUCTURE_FAILURE_META, so the worker retries the command
 * instead of reporting a failure that a later attempt may not have.
 */
async function run(
  log: ToolLog,
  body: (log: ToolLog) => Promise<CallToolResult>,
): Promise<CallToolResult> {
  try {
    return await body(log);
  } catch (err) {
    if (err instanceof BacklogError) {
      await log('warning', { message: err.message });
      return { content: [{ type: 'text', text: err.message }], isError: true };
    }
    if (err instanceof McpError) {
      await log('warning', { message: err.message });
      throw err;
    }
    // The cause stays in the worker's own log: it may name internals.
    await log('error', { message: 'The backlog store failed' });
    const message = err instanceof Error ? err.message : String(err);
    return {
      content: [{ type: 'text', text: `Internal error: ${message}` }],
      isError: true,
      _meta: { [INFRASTRUCTURE_FAILURE_META]: true },
    };
  }
}
