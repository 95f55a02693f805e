import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** Builds one MCP server; a worker calls it for its seed-path server and for each session. */
export type McpServerModuleFactory = () => Promise<McpServer>;

/**
 * The project compiles to CommonJS, where TypeScript turns `import()` into `require()`: that
 * cannot load an ES module with top-level await, nor honour `.mjs` rules everywhere. A function
 * built at run time keeps Node's own dynamic `import()`, which loads CommonJS and ES alike.
 */
const importModule = new Function('url', 'return import(url)') as (
  url: string,
) => Promise<Record<string, unknown>>;

/**
 * Loads MCP_SERVER_MODULE: a path (absolute, or relative to the working directory) to a
 * CommonJS or ES module whose `createMcpServer` export, or default export, is a function
 * returning an SDK `McpServer` (or a promise of one). Fails with a one-line message naming the
 * module when the file is missing, its import throws or it exports no such function. The
 * returned factory checks each server it builds, and says so when the module's function throws
 * or returns something else.
 */
export async function loadServerModule(
  modulePath: string,
  cwd: string = process.cwd(),
): Promise<McpServerModuleFactory> {
  const file = path.resolve(cwd, modulePath);
  const where = `MCP_SERVER_MODULE ${modulePath}`;
  if (!existsSync(file)) throw new Error(`${where}: no such file (${file})`);
  let exports: Record<string, unknown>;
  try {
    exports = await importModule(pathToFileURL(file).href);
  } catch (err) {
    throw new Error(`${where}: loading it threw: ${oneLine(err)}`);
  }
  const factory = pickFactory(exports);
  if (!factory) {
    throw new Error(
      `${where}: exports no function as createMcpServer or default (exports: ${describeExports(exports)})`,
    );
  }
  return async () => {
    let server: unknown;
    try {
      server = await factory();
    } catch (err) {
      throw new Error(`${where}: its factory threw: ${oneLine(err)}`);
    }
    if (!isMcpServer(server)) {
      throw new Error(`${where}: its factory returned ${describe(server)}, not an McpServer`);
    }
    return server;
  };
}

/**
 * `createMcpServer` first, then the default export. A CommonJS module's `module.exports`
 * arrives as `default` (and its named exports beside it, when Node can detect them), so
 * `module.exports = fn` and `module.exports = { createMcpServer }` both work.
 */
function pickFactory(exports: Record<string, unknown>): (() => unknown) | undefined {
  const fallback = exports.default as Record<string, unknown> | undefined;
  const candidates = [
    exports.createMcpServer,
    exports.default,
    typeof fallback === 'object' && fallback !== null ? fallback.createMcpServer : undefined,
  ];
  return candidates.find((c): c is () => unknown => typeof c === 'function');
}

/**
 * An McpServer by shape, not by class: an ES module importing the SDK gets its ES build, a
 * class distinct from the CommonJS one the worker requires, so `instanceof` would refuse it.
 */
function isMcpServer(value: unknown): value is McpServer {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Record<string, unknown>;
  const inner = candidate.server as Record<string, unknown> | undefined;
  return (
    typeof candidate.connect === 'function' &&
    typeof candidate.close === 'function' &&
    typeof candidate.registerTool === 'function' &&
    typeof inner === 'object' &&
    inner !== null &&
    typeof inner.setRequestHandler === 'function'
  );
}

function describeExports(exports: Record<string, unknown>): string {
  const names = Object.keys(exports);
  return names.length === 0 ? 'none' : names.join(', ');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object (${value.constructor?.name ?? 'no class'})`;
  return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`;
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
