import type { Feature, Project, ProjectSummary, Story } from '../backlog/model';

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
