/**
 * Dockerfile and .dockerignore, offline (no Docker engine here): a multi-stage build on Node
 * 20 whose runtime stage installs production dependencies only, runs as a non-root numeric
 * user, exposes PORT and starts the package.json entry point; everything it copies is in the
 * build context, and nothing it needs is excluded.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { npmScriptCommand, readText, repoPath, ROOT } from './helpers';

/** Files under a directory (repo-relative, or absolute), as paths relative to it. */
function filesUnder(dir: string): string[] {
  const abs = isAbsolute(dir) ? dir : repoPath(dir);
  if (!existsSync(abs)) return [];
  const base = isAbsolute(dir) ? abs : ROOT;
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(base, join(e.parentPath, e.name)));
}

interface Instruction {
  op: string;
  args: string;
}

/** Instructions grouped by stage, continuation lines joined, comments dropped. */
function stages(): { name?: string; from: string; body: Instruction[] }[] {
  const logical = readText('Dockerfile')
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const out: { name?: string; from: string; body: Instruction[] }[] = [];
  for (const line of logical) {
    const [, op, args] = /^(\S+)\s*(.*)$/.exec(line)!;
    if (op.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args)!;
      out.push({ from: m[1], name: m[2], body: [] });
    } else if (out.length) out[out.length - 1].body.push({ op: op.toUpperCase(), args });
  }
  return out;
}

const argDefault = (name: string) =>
  new RegExp(`^ARG\\s+${name}=(\\S+)`, 'm').exec(readText('Dockerfile'))?.[1];
const runs = (body: Instruction[]) => body.filter((i) => i.op === 'RUN').map((i) => i.args);

/** .dockerignore patterns as regular expressions over context-relative paths. */
function ignored(path: string): boolean {
  const patterns = readText('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let out = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    const glob = (negate ? p.slice(1) : p).replace(/^\/|\/$/g, '');
    const re = new RegExp(
      `^${glob
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('[^/]*')}(/.*)?$`,
    );
    if (re.test(path)) out = !negate;
  }
  return out;
}

describe('Dockerfile', () => {
  const all = stages();
  const runtime = all[all.length - 1];
  const build = all[0];

  test('builds in one stage and runs from another, both on Node 20', () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const s of all) {
      const image = s.from.replace(/^\$\{(\w+)\}$/, (_m, n) => argDefault(n) ?? '');
      expect(image).toMatch(/^node:20(\.\d+)*-(bookworm-slim|alpine[\d.]*)$/);
    }
    expect(runs(build.body).join('\n')).toMatch(/npm ci\b/);
    expect(runs(build.body).join('\n')).toMatch(/npm run build\b/);
  });

  test('the runtime stage has production dependencies and the compiled code only', () => {
    const r = runs(runtime.body).join('\n');
    expect(r).toMatch(/npm ci --omit=dev\b/);
    expect(r).not.toMatch(/npm run build/);
    const fromBuild = runtime.body.filter(
      (i) => i.op === 'COPY' && i.args.includes(`--from=${build.name}`),
    );
    expect(fromBuild.length).toBeGreaterThan(0);
    // The build stage collects dist/ into what the runtime copies.
    expect(runs(build.body).join('\n')).toMatch(/cp -r dist /);
  });

  test('runs as a numeric non-root user, exposes PORT, starts the gateway by default', () => {
    const user = runtime.body.filter((i) => i.op === 'USER').pop()?.args ?? '';
    // Numeric, so that Kubernetes' runAsNonRoot can check it.
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(
      runtime.body.some((i) => i.op === 'EXPOSE' && i.args.split(/\s+/).includes('3000')),
    ).toBe(true);
    const cmd = JSON.parse(runtime.body.filter((i) => i.op === 'CMD').pop()!.args);
    expect(cmd).toEqual(npmScriptCommand('gateway'));
    const healthcheck = runtime.body.find((i) => i.op === 'HEALTHCHECK');
    expect(healthcheck?.args).toContain('/health');
  });

  test('everything it copies from the context exists and is not excluded by .dockerignore', () => {
    const sources = all
      .flatMap((s) => s.body)
      .filter((i) => i.op === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) =>
        i.args
          .split(/\s+/)
          .filter((a) => !a.startsWith('--'))
          .slice(0, -1),
      );
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json']));
    for (const src of sources) {
      expect([src, existsSync(repoPath(src)), ignored(src)]).toEqual([src, true, false]);
    }
    // The sources tsconfig.build.json compiles are all copied.
    const include: string[] = JSON.parse(readText('tsconfig.build.json')).include;
    for (const dir of include) expect(sources).toContain(dir);
  });

  test('the image gets every non-TypeScript source file (Lua scripts, pages) at its path', () => {
    // The build stage's copy command, run on this tree into a temporary directory.
    const find = runs(build.body)
      .flatMap((r) => r.split('&&').map((c) => c.trim()))
      .find((c) => c.startsWith('find '));
    expect(find).toBeDefined();
    const out = mkdtempSync(join(tmpdir(), 'mcpgw-image-'));
    try {
      const r = spawnSync('sh', ['-c', find!.replace(/\/out\//g, `${out}/`)], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      const include: string[] = JSON.parse(readText('tsconfig.build.json')).include;
      const assets = include.flatMap((d) => filesUnder(d)).filter((f) => !f.endsWith('.ts'));
      for (const f of assets) expect([f, existsSync(join(out, f))]).toEqual([f, true]);
      expect(filesUnder(out).filter((f) => f.endsWith('.ts'))).toEqual([]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test('.dockerignore keeps local build output, dependencies and secrets out', () => {
    for (const p of ['node_modules', 'dist', '.git', '.env', 'test/unit/x.test.ts']) {
      expect([p, ignored(p)]).toEqual([p, true]);
    }
  });
});
