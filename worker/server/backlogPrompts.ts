import { completable } from '@modelcontextprotocol/sdk/server/completable.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  ErrorCode,
  McpError,
  type GetPromptResult,
  type PromptMessage,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { BacklogError } from '../backlog/errors';
import type { BacklogStore } from '../backlog/store';
import type { BacklogCompleters } from './backlogCompletion';
import { RESOURCE_KINDS, assertMayRead, backlogUri, jsonContent } from './backlogResources';
import type { HandlerContext } from './requestContext';

/** How many stories write_user_stories asks for when no count is given, and at most. */
const DEFAULT_STORY_COUNT = 5;
const MAX_STORY_COUNT = 20;

const idArgument = (what: string) => z.string().min(1).max(200).describe(`Id of the ${what}`);

/**
 * Prompts a person keeping a backlog would use. Each embeds the resources it is about (their
 * JSON, as `resource` content) and tells the model which tools write the result back.
 * Unknown ids are -32602 errors naming the argument.
 */
export function registerBacklogPrompts(
  server: McpServer,
  store: BacklogStore,
  completers: BacklogCompleters,
): void {
  server.registerPrompt(
    'write_user_stories',
    {
      title: 'Write user stories for an actor',
      description:
        "Drafts user stories for one of a project's actors, knowing the project's backlog, " +
        'ready to add with add_story_to_actor.',
      argsSchema: {
        projectId: completable(
          idArgument('project (completes ids and names)'),
          completers.projectId,
        ),
        actorName: completable(
          z.string().min(1).max(200).describe('Name of the actor, e.g. "Customer"'),
          completers.actorName,
        ),
        count: z
          .string()
          .regex(/^\d{1,2}$/, 'count must be a whole number')
          .optional()
          .describe(`How many stories (1 to ${MAX_STORY_COUNT}; default ${DEFAULT_STORY_COUNT})`),
      },
    },
    async ({ projectId, actorName, count }, extra) => {
      const stories = count === undefined ? DEFAULT_STORY_COUNT : Number(count);
      if (stories < 1 || stories > MAX_STORY_COUNT) {
        throw invalidArgument('count', `count must be between 1 and ${MAX_STORY_COUNT}`);
      }
      const project = await lookUp(extra, 'projects', 'projectId', () =>
        store.getProject(projectId),
      );
      const wanted = actorName.trim().toLowerCase();
      const actor = project.actors.find((a) => a.name.toLowerCase() === wanted);
      if (!actor) {
        const known = project.actors.map((a) => `"${a.name}"`).join(', ') || 'none yet';
        throw invalidArgument(
          'actorName',
          `Project ${projectId} has no actor named "${actorName}" (actors: ${known}); ` +
            'add it with add_actor first',
        );
      }
      return prompt(`User stories for ${actor.name} in ${project.name}`, [
        embed('projects', project),
        embed('actors', withProject(actor, project.id)),
        text(
          `Write ${stories} new user stories for the actor "${actor.name}" (id ${actor.id}) of ` +
            `the project "${project.name}" above. Each as "As a ${actor.name}, I want ... so ` +
            'that ...", with a priority (low, medium or high). Do not repeat stories the actor ' +
            `has already. Then add each with the add_story_to_actor tool (actorId "${actor.id}").`,
        ),
      ]);
    },
  );

  server.registerPrompt(
    'split_story_into_features',
    {
      title: 'Split a story into features',
      description:
        'Breaks a user story into features small enough to build, ready to add with ' +
        'add_feature_to_story and add_child_feature.',
      argsSchema: { storyId: completable(idArgument('story'), completers.storyId) },
    },
    async ({ storyId }, extra) => {
      const story = await lookUp(extra, 'stories', 'storyId', () => store.getStory(storyId));
      return prompt(`Features for story "${story.title}"`, [
        embed('stories', story),
        text(
          'Split the user story above into features: each small enough to build and test on ' +
            'its own, together delivering the whole story, none repeating a feature it has ' +
            `already. Then add each with the add_feature_to_story tool (storyId "${storyId}"), ` +
            'and parts of a feature with add_child_feature.',
        ),
      ]);
    },
  );

  server.registerPrompt(
    'review_backlog',
    {
      title: "Review a project's backlog for gaps",
      description:
        "Reviews a project's actors, stories and features for what is missing, vague or " +
        'unbalanced.',
      argsSchema: { projectId: completable(idArgument('project'), completers.projectId) },
    },
    async ({ projectId }, extra) => {
      const project = await lookUp(extra, 'projects', 'projectId', () =>
        store.getProject(projectId),
      );
      return prompt(`Backlog review of ${project.name}`, [
        embed('projects', project),
        text(
          'Review the backlog of the project above for gaps: actors with no stories or ' +
            'likely actors missing, stories with no features, stories too large or vague to ' +
            'build, statuses and priorities that do not add up. List each gap with the ids ' +
            'involved and a concrete fix (the tool to call and its arguments).',
        ),
      ]);
    },
  );
}

/**
 * Reads an entity for a prompt: an unknown id is a -32602 error naming the prompt argument.
 * The token must be allowed to read it, as through resources/read.
 */
async function lookUp<T>(
  extra: HandlerContext,
  collection: keyof typeof RESOURCE_KINDS,
  argument: string,
  read: () => Promise<T>,
): Promise<T> {
  assertMayRead(extra, RESOURCE_KINDS[collection].readTool);
  try {
    return await read();
  } catch (err) {
    if (err instanceof BacklogError) throw invalidArgument(argument, `${argument}: ${err.message}`);
    throw err;
  }
}

/** An entity as embedded prompt content: its resource's JSON. */
function embed(
  collection: keyof typeof RESOURCE_KINDS,
  entity: { id: string } & object,
): PromptMessage {
  return {
    role: 'user',
    content: { type: 'resource', resource: jsonContent(backlogUri(collection, entity.id), entity) },
  };
}

/** An actor as its resource reads it: with its project's id. */
function withProject<T extends object>(entity: T, projectId: string): T & { projectId: string } {
  return { ...entity, projectId };
}

function text(body: string): PromptMessage {
  return { role: 'user', content: { type: 'text', text: body } };
}

function prompt(description: string, messages: PromptMessage[]): GetPromptResult {
  return { description, messages };
}

function invalidArgument(argument: string, message: string): McpError {
  return new McpError(ErrorCode.InvalidParams, message, { argument });
}
