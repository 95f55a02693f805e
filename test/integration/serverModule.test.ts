/**
 * MCP_SERVER_MODULE against real processes: a gateway and `npm run worker` (node
 * dist/bin/worker.js) serving a module's McpServer instead of the backlog, over /mcp and the
 * seed API; CommonJS and ES modules, default and `createMcpServer` exports, an async factory;
 * `npm start` with the README's example; and each bad module stopping the worker at start with
 * its one-line message and exit code 1.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { issueToken } from '../../shared/auth';
import { provideRedis, uniquePrefix, type ProvidedRedis } from '../../devSupport/redis';
import { reapAll, spawnRole, type SpawnedProcess } from '../helpers/processes';
import { callTool, openSseClient } from '../helpers/sseClient';
import { waitFor } from '../../devSupport/waitFor';

const ROOT = path.resolve(__dirname, '../..');
const SECRET = 'server-module-secret-0123456789abcdef';
const team = issueToken(SECRET, { type: 'team', sub: 'module-team', ttl: '1h' });
const readonly = issueToken(SECRET, { type: 'readonly', sub: 'module-reader', ttl: '1h' });

let redis: ProvidedRedis;
/** Modules written for this run, under the project so that they resolve its node_modules. */
let moduleDir: string;

beforeAll(async () => {
  redis = await provideRedis();
  await mkdir(path.join(ROOT, '.tmp'), { recursive: true });
  moduleDir = await mkdtemp(path.join(ROOT, '.tmp', 'server-modules-'));
}, 30_000);

afterAll(async () => {
  await reapAll();
  await redis?.stop();
  if (moduleDir) await rm(moduleDir, { recursive: true, force: true });
});

/** A module file of this run; returns its absolute path. */
async function writeModule(name: string, source: string): Promise<string> {
  const file = path.join(moduleDir, name);
  await writeFile(file, source);
  return file;
}

/** The body of a factory: an McpServer with one tool `tool` answering `<tool>: <text>`. */
function serverSource(tool: string, sdk: string): string {
  return `
  const server = new ${sdk}.McpServer({ name: '${tool}', version: '1.0.0' });
  server.registerTool('${tool}', { description: 'test', inputSchema: { text: z.string() } },
    ({ text }) => ({ content: [{ type: 'text', text: '${tool}: ' + text }] }));
  return server;`;
}

const CJS_HEADER = `const sdk = require('@modelcontextprotocol/sdk/server/mcp.js');
const { z } = require('zod');`;
const ESM_HEADER = `import * as sdk from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';`;

/** A gateway and a worker on a prefix of their own, the worker with `workerEnv`. */
async function startPair(workerEnv: Record<string, string>) {
  const env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix('server-module'),
    JWT_SECRET: SECRET,
  };
  const [gateway, worker] = await Promise.all([
    spawnRole('gateway', { ...env, POD_ID: 'gateway-a' }),
    spawnRole('worker', { ...env, ...workerEnv, POD_ID: 'worker-1' }),
  ]);
  return {
    gateway,
    worker,
    stop: () => Promise.all([gateway.kill(), worker.kill()]),
  };
}

/** An SDK client on the gateway's /mcp (2025-11-25 session). */
async function mcpClient(gateway: SpawnedProcess, token: string): Promise<Client> {
  const client = new Client({ name: 'server-module-test', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

function textOf(result: unknown): string {
  const [first] = (result as CallToolResult).content;
  return first?.type === 'text' ? first.text : `(${String(first?.type)})`;
}

test("the README's example module: its tool over /mcp and the seed API, the backlog's gone", async () => {
  const pair = await startPair({ MCP_SERVER_MODULE: 'examples/echo-server.mjs' });
  try {
    const client = await mcpClient(pair.gateway, team);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(['echo']);
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'hi' } }))).toBe(
      'echo: hi',
    );
    // An unknown tool (a backlog one) is an error of the module's server, not a backlog call.
    const missing = await client.callTool({ name: 'list_projects', arguments: {} });
    expect(missing.isError).toBe(true);
    await client.close();

    // Permissions by token apply: the example's tool is read-only, so a readonly token sees it.
    const reader = await mcpClient(pair.gateway, readonly);
    expect((await reader.listTools()).tools.map((t) => t.name)).toEqual(['echo']);
    await reader.close();

    // The seed API: the same server behind POST /mcp/sse/send.
    const sse = await openSseClient(pair.gateway.url, team);
    try {
      const result = await callTool(pair.gateway.url, team, sse, 'echo', { text: 'seed' });
      expect(result.event).toBe('tool-result');
      expect(JSON.stringify(result.json)).toContain('echo: seed');
    } finally {
      sse.close();
    }
  } finally {
    await pair.stop();
  }
}, 60_000);

test('npm start serves the example module too (gateway and worker in one process)', async () => {
  const start = await spawnRole('start', {
    JWT_SECRET: SECRET,
    MCP_SERVER_MODULE: 'examples/echo-server.mjs',
  });
  try {
    const client = await mcpClient(start, team);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['echo']);
    expect(textOf(await client.callTool({ name: 'echo', arguments: { text: 'one' } }))).toBe(
      'echo: one',
    );
    await client.close();
  } finally {
    await start.kill();
  }
}, 60_000);

const goodModules: Array<{ kind: string; file: string; source: string; tool: string }> = [
  {
    kind: 'CommonJS, module.exports = factory',
    file: 'cjs-default.cjs',
    tool: 'cjs_default',
    source: `${CJS_HEADER}\nmodule.exports = function () {${serverSource('cjs_default', 'sdk')}\n};\n`,
  },
  {
    kind: 'CommonJS, exports.createMcpServer',
    file: 'cjs-named.js',
    tool: 'cjs_named',
    source: `${CJS_HEADER}\nexports.createMcpServer = function () {${serverSource('cjs_named', 'sdk')}\n};\n`,
  },
  {
    kind: 'ES, export default',
    file: 'esm-default.mjs',
    tool: 'esm_default',
    source: `${ESM_HEADER}\nexport default function () {${serverSource('esm_default', 'sdk')}\n}\n`,
  },
  {
    kind: 'ES, async createMcpServer beside an unrelated default',
    file: 'esm-async.mjs',
    tool: 'esm_async',
    source:
      `${ESM_HEADER}\nexport default 'not the factory';\n` +
      `export async function createMcpServer() {\n  await new Promise((r) => setImmediate(r));` +
      `${serverSource('esm_async', 'sdk')}\n}\n`,
  },
];

test.each(goodModules)(
  '$kind: served over /mcp and the seed API',
  async (mod) => {
    const file = await writeModule(mod.file, mod.source);
    const pair = await startPair({ MCP_SERVER_MODULE: file });
    try {
      const client = await mcpClient(pair.gateway, team);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual([mod.tool]);
      const result = await client.callTool({ name: mod.tool, arguments: { text: 'x' } });
      expect(textOf(result)).toBe(`${mod.tool}: x`);
      await client.close();
      const sse = await openSseClient(pair.gateway.url, team);
      try {
        const seed = await callTool(pair.gateway.url, team, sse, mod.tool, { text: 'y' });
        expect(seed.event).toBe('tool-result');
        expect(JSON.stringify(seed.json)).toContain(`${mod.tool}: y`);
      } finally {
        sse.close();
      }
    } finally {
      await pair.stop();
    }
  },
  60_000,
);

/**
 * `count_slowly`: one progress notification per 100 ms step; when cancelled, it writes the step
 * it stopped at to MODULE_TEST_DIR/cancelled (the test's window into the worker process).
 */
const COUNTING_MODULE = `${ESM_HEADER}
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export function createMcpServer() {
  const server = new sdk.McpServer({ name: 'counter', version: '1.0.0' });
  server.registerTool('count_slowly', { inputSchema: { steps: z.number().int() } },
    async ({ steps }, extra) => {
      for (let step = 1; step <= steps; step += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        if (extra.signal.aborted) {
          writeFileSync(path.join(process.env.MODULE_TEST_DIR, 'cancelled'), String(step));
          throw new Error('cancelled');
        }
        const progressToken = extra._meta?.progressToken;
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: step, total: steps },
          });
        }
      }
      return { content: [{ type: 'text', text: 'counted ' + steps }] };
    });
  return server;
}
`;

test('across two gateways and two workers: progress, cancellation, the seed API', async () => {
  const file = await writeModule('counter.mjs', COUNTING_MODULE);
  const env = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: uniquePrefix('server-module-cluster'),
    JWT_SECRET: SECRET,
  };
  const workerEnv = { ...env, MCP_SERVER_MODULE: file, MODULE_TEST_DIR: moduleDir };
  const [gatewayA, gatewayB] = await Promise.all([
    spawnRole('gateway', { ...env, POD_ID: 'gateway-a' }),
    spawnRole('gateway', { ...env, POD_ID: 'gateway-b' }),
    spawnRole('worker', { ...workerEnv, POD_ID: 'worker-1' }),
    spawnRole('worker', { ...workerEnv, POD_ID: 'worker-2' }),
  ]);
  const client = await mcpClient(gatewayA, team);
  try {
    const progress: number[] = [];
    const done = await client.callTool(
      { name: 'count_slowly', arguments: { steps: 3 } },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    expect(textOf(done)).toBe('counted 3');
    expect(progress).toEqual([1, 2, 3]);

    // Cancelled by the client after its first progress: the worker running it sees the abort.
    const abort = new AbortController();
    const cancelled = client.callTool(
      { name: 'count_slowly', arguments: { steps: 200 } },
      undefined,
      { signal: abort.signal, onprogress: () => abort.abort() },
    );
    await expect(cancelled).rejects.toThrow();
    const marker = path.join(moduleDir, 'cancelled');
    await waitFor(() => existsSync(marker), 10_000, 'the module tool to see its cancellation');
    expect(Number(await readFile(marker, 'utf8'))).toBeLessThan(200);

    const sse = await openSseClient(gatewayB.url, team);
    try {
      const seed = await callTool(gatewayB.url, team, sse, 'count_slowly', { steps: 2 });
      expect(seed.event).toBe('tool-result');
      expect(JSON.stringify(seed.json)).toContain('counted 2');
    } finally {
      sse.close();
    }
  } finally {
    await client.close();
    await reapAll();
  }
}, 60_000);

const badModules: Array<{ kind: string; file?: string; source?: string; message: RegExp }> = [
  { kind: 'a missing file', message: /MCP_SERVER_MODULE \S+missing\.mjs: no such file/ },
  {
    kind: 'a module that throws on import',
    file: 'throws.mjs',
    source: `throw new Error('boom at import');\n`,
    message: /MCP_SERVER_MODULE \S+throws\.mjs: loading it threw: boom at import/,
  },
  {
    kind: 'a module with a syntax error',
    file: 'syntax.cjs',
    source: `module.exports = function ( {\n`,
    message: /MCP_SERVER_MODULE \S+syntax\.cjs: loading it threw: /,
  },
  {
    kind: 'no usable export',
    file: 'no-factory.mjs',
    source: `export const createMcpServer = 42;\nexport const other = () => 1;\n`,
    message:
      /MCP_SERVER_MODULE \S+no-factory\.mjs: exports no function as createMcpServer or default \(exports: createMcpServer, other\)/,
  },
  {
    kind: 'a factory that throws',
    file: 'factory-throws.cjs',
    source: `module.exports = () => { throw new Error('no server today'); };\n`,
    message: /MCP_SERVER_MODULE \S+factory-throws\.cjs: its factory threw: no server today/,
  },
  {
    kind: 'an async factory that rejects',
    file: 'factory-rejects.mjs',
    source: `export async function createMcpServer() { throw new Error('later, maybe'); }\n`,
    message: /MCP_SERVER_MODULE \S+factory-rejects\.mjs: its factory threw: later, maybe/,
  },
  {
    kind: 'a factory returning something else',
    file: 'not-a-server.mjs',
    source: `export default () => ({ tools: [] });\n`,
    message:
      /MCP_SERVER_MODULE \S+not-a-server\.mjs: its factory returned an object \(Object\), not an McpServer/,
  },
];

test.each(badModules)(
  '$kind stops the worker at start with a one-line message, exit 1',
  async (mod) => {
    const file =
      mod.file && mod.source
        ? await writeModule(mod.file, mod.source)
        : path.join(moduleDir, 'missing.mjs');
    const worker = await spawnRole(
      'worker',
      {
        REDIS_URL: redis.url,
        REDIS_PREFIX: uniquePrefix('server-module-bad'),
        POD_ID: 'worker-bad',
        MCP_SERVER_MODULE: file,
      },
      { waitReady: false },
    );
    expect(await worker.exited).toBe(1);
    // One log line carries the whole message.
    const line = worker
      .output()
      .split('\n')
      .find((l) => l.includes('Startup failed'));
    expect(line).toBeDefined();
    expect((JSON.parse(line!) as { error: string }).error).toMatch(mod.message);
    // It never reached the point of serving: nothing listens on its port.
    await expect(fetch(`${worker.url}/health`)).rejects.toThrow();
  },
  30_000,
);
