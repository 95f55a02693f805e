import type { Actor, Feature, Project, ProjectSummary, Story, StoryTree } from '../backlog/model';
import type { FeatureInStory } from '../backlog/store';

/** Human-readable text for tool results (the structured form goes in structuredContent). */

export function describeProjectList(projects: ProjectSummary[], nextCursor?: string): string {
  if (projects.length === 0) return 'No projects yet.';
  const lines = projects.map(
    (p) =>
      `- ${p.name} (${p.id}): ${p.actorCount} actors, ${p.storyCount} stories, ${p.featureCount} features`,
  );
  const more = nextCursor ? [`More projects follow: call again with cursor "${nextCursor}".`] : [];
  return [`${projects.length} project(s):`, ...lines, ...more].join('\n');
}

export function outlineProject(project: Project): string {
  const lines = [`Project "${project.name}" (${project.id})`];
  if (project.description) lines.push(`  ${project.description}`);
  for (const actor of project.actors) {
    lines.push(`  Actor "${actor.name}" (${actor.id})`);
    for (const story of actor.stories) outlineStoryInto(lines, story, '    ');
  }
  if (project.actors.length === 0) lines.push('  (no actors yet)');
  return lines.join('\n');
}

export function outlineStory(story: Story): string {
  const lines: string[] = [];
  outlineStoryInto(lines, story, '');
  return lines.join('\n');
}

export function outlineFeature(feature: Feature): string {
  const lines: string[] = [];
  outlineFeatureInto(lines, feature, '');
  return lines.join('\n');
}

function outlineStoryInto(lines: string[], story: Story, indent: string): void {
  lines.push(`${indent}Story "${story.title}" [${story.status}, ${story.priority}] (${story.id})`);
  for (const feature of story.features) outlineFeatureInto(lines, feature, `${indent}  `);
}

function outlineFeatureInto(lines: string[], feature: Feature, indent: string): void {
  lines.push(`${indent}Feature "${feature.title}" [${feature.status}] (${feature.id})`);
  for (const child of feature.children) outlineFeatureInto(lines, child, `${indent}  `);
}

/**
 * Markdown renderings for resources/read (beside the JSON): a heading, the description, and
 * the tree as nested lists, so a model reads the backlog without parsing JSON.
 */

export function projectMarkdown(project: Project): string {
  const lines = [`# Project: ${project.name}`, '', `Id: \`${project.id}\``];
  if (project.description) lines.push('', project.description);
  lines.push('', '## Actors', '');
  if (project.actors.length === 0) lines.push('(no actors yet)');
  for (const actor of project.actors) actorInto(lines, actor, '');
  return lines.join('\n');
}

export function actorMarkdown(actor: Actor & { projectId: string }): string {
  const lines = [
    `# Actor: ${actor.name}`,
    '',
    `Id: \`${actor.id}\`, project \`${actor.projectId}\``,
  ];
  if (actor.description) lines.push('', actor.description);
  lines.push('', '## Stories', '');
  if (actor.stories.length === 0) lines.push('(no stories yet)');
  for (const story of actor.stories) storyInto(lines, story, '');
  return lines.join('\n');
}

export function storyMarkdown(story: StoryTree): string {
  const lines = [
    `# Story: ${story.title}`,
    '',
    `Id: \`${story.id}\`, status ${story.status}, priority ${story.priority}, ` +
      `actor \`${story.actorId}\`, project \`${story.projectId}\``,
  ];
  if (story.description) lines.push('', story.description);
  lines.push('', '## Features', '');
  if (story.features.length === 0) lines.push('(no features yet)');
  for (const feature of story.features) featureInto(lines, feature, '');
  return lines.join('\n');
}

export function featureMarkdown(feature: FeatureInStory): string {
  const parent = feature.parentFeatureId ? `, parent feature \`${feature.parentFeatureId}\`` : '';
  const lines = [
    `# Feature: ${feature.title}`,
    '',
    `Id: \`${feature.id}\`, status ${feature.status}, story \`${feature.storyId}\`${parent}`,
  ];
  if (feature.description) lines.push('', feature.description);
  if (feature.children.length > 0) {
    lines.push('', '## Child features', '');
    for (const child of feature.children) featureInto(lines, child, '');
  }
  return lines.join('\n');
}

function actorInto(lines: string[], actor: Actor, indent: string): void {
  lines.push(`${indent}- Actor **${actor.name}** (\`${actor.id}\`)${described(actor.description)}`);
  for (const story of actor.stories) storyInto(lines, story, `${indent}  `);
}

function storyInto(lines: string[], story: Story, indent: string): void {
  lines.push(
    `${indent}- Story **${story.title}** [${story.status}, ${story.priority}] (\`${story.id}\`)` +
      described(story.description),
  );
  for (const feature of story.features) featureInto(lines, feature, `${indent}  `);
}

function featureInto(lines: string[], feature: Feature, indent: string): void {
  lines.push(
    `${indent}- Feature **${feature.title}** [${feature.status}] (\`${feature.id}\`)` +
      described(feature.description),
  );
  for (const child of feature.children) featureInto(lines, child, `${indent}  `);
}

function described(description: string): string {
  return description ? `: ${description.replace(/\s+/g, ' ')}` : '';
}
