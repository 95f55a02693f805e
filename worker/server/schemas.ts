import { z } from 'zod';
import { PRIORITIES, WORK_STATUSES } from '../backlog/model';

/**
 * zod (v4) schemas of the backlog tools: input shapes validated by the SDK before a handler
 * runs, and output schemas that describe exactly what structuredContent holds (clients such as
 * the SDK's Client check structuredContent against them, extra properties included).
 */

const id = (what: string) => z.string().min(1).max(200).describe(`Id of the ${what}`);
const name = z.string().trim().min(1).max(200);
/** Bounded, so one entity (and the lists and trees that carry it) stays small. */
export const MAX_DESCRIPTION_LENGTH = 2000;
const description = z.string().max(MAX_DESCRIPTION_LENGTH);
const status = z.enum(WORK_STATUSES);
const priority = z.enum(PRIORITIES);

// ---- inputs (raw shapes, as registerTool takes them) ----

/** list_projects pages: at most this many projects per call. */
export const MAX_PAGE_SIZE = 100;

export const listProjectsInput = {
  cursor: z
    .string()
    .min(1)
    .max(400)
    .optional()
    .describe('nextCursor of the previous page; absent for the first page'),
  limit: z
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE_SIZE)
    .optional()
    .describe(`Projects per page (default 50, at most ${MAX_PAGE_SIZE})`),
};

export const createProjectInput = {
  name: name.describe('Project name'),
  description: description.optional().describe('What the project is about'),
};

export const projectIdInput = { projectId: id('project') };

export const addActorInput = {
  projectId: id('project'),
  name: name.describe('Who the actor is, e.g. "Customer"'),
  description: description.optional(),
};

export const addStoryInput = {
  actorId: id('actor'),
  title: name.describe('What the actor wants'),
  description: description.optional(),
  status: status.optional().describe('Defaults to todo'),
  priority: priority.optional().describe('Defaults to medium'),
};

export const storyIdInput = { storyId: id('story') };

export const updateStoryInput = {
  storyId: id('story'),
  title: name.optional(),
  description: description.optional(),
  status: status.optional(),
  priority: priority.optional(),
};

export const addFeatureInput = {
  storyId: id('story'),
  title: name.describe('Feature title'),
  description: description.optional(),
  status: status.optional().describe('Defaults to todo'),
};

export const addChildFeatureInput = {
  parentFeatureId: id('parent feature'),
  title: name.describe('Feature title'),
  description: description.optional(),
  status: status.optional().describe('Defaults to todo'),
};

/** What a demo of progress and cancellation needs: at most 20 steps of 2 s (40 s in all). */
export const simulateWorkInput = {
  steps: z.number().int().min(1).max(20).default(5).describe('Number of steps (at most 20)'),
  delayMs: z
    .number()
    .int()
    .min(0)
    .max(2000)
    .default(200)
    .describe('Time per step, in ms (at most 2000)'),
};

// ---- outputs ----

/** A feature and its children, recursively (zod 4 getter syntax for recursive schemas). */
const feature = z.object({
  id: z.string(),
  title: z.string(),
  description: z.string(),
  status,
  createdAt: z.string(),
  get children(): z.ZodArray<typeof feature> {
    return z.array(feature);
  },
});

const storyFields = {
  id: z.string(),
  title: z.string(),
  description: z.string(),
  status,
  priority,
  createdAt: z.string(),
  updatedAt: z.string(),
  features: z.array(feature),
};

const actorFields = {
  id: z.string(),
  name: z.string(),
  description: z.string(),
  createdAt: z.string(),
  stories: z.array(z.object(storyFields)),
};

export const projectOutput = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  actors: z.array(z.object(actorFields)),
});

export const projectListOutput = z.object({
  /** True when more projects follow: call again with nextCursor. */
  hasMore: z.boolean(),
  nextCursor: z.string().optional(),
  projects: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      description: z.string(),
      createdAt: z.string(),
      updatedAt: z.string(),
      actorCount: z.number(),
      storyCount: z.number(),
      featureCount: z.number(),
    }),
  ),
});

export const actorOutput = z.object({ ...actorFields, projectId: z.string() });

export const storyOutput = z.object({
  ...storyFields,
  projectId: z.string(),
  actorId: z.string(),
});

export const featureOutput = z.object({
  ...feature.shape,
  projectId: z.string(),
  storyId: z.string(),
  parentFeatureId: z.string().optional(),
});

export const simulateWorkOutput = z.object({
  steps: z.number(),
  completedSteps: z.number(),
  cancelled: z.boolean(),
});
