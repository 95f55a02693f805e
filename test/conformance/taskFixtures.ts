import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { TASKS_EXTENSION } from '../../shared/mcpTasks';

/**
 * Test-only: the tools the conformance suite's `tasks-*` scenarios (the Tasks extension,
 * SEP-2663) call by name, declaring task support in `_meta` as every server module does; the
 * worker's 2026-07-28 layer runs them as tasks. Not here: `confirm_delete` and `multi_input`
 * (a task waiting on client input: the worker's tasks never ask the client) and
 * `protocol_error_job` (an SDK 1.x tool handler's error becomes an isError result, never a
 * JSON-RPC error).
 */
export function registerTaskFixtures(server: McpServer): void {
  const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
  const taskSupport = (support: 'optional' | 'required') => ({
    [TASKS_EXTENSION]: { taskSupport: support },
  });

  server.registerTool(
    'greet',
    { description: 'Fixture: says hello at once', inputSchema: { name: z.string() } },
    ({ name }) => text(`Hello, ${name}!`),
  );
  server.registerTool(
    'slow_compute',
    {
      description: 'Fixture: sleeps `seconds`, then answers (a task when the client can take one)',
      inputSchema: { seconds: z.number().min(0).max(120).default(1), label: z.string().optional() },
      _meta: taskSupport('optional'),
    },
    async ({ seconds, label }, extra) => {
      await sleep(seconds * 1000, extra.signal);
      return text(`Computed ${label ?? 'result'} after ${seconds} s`);
    },
  );
  server.registerTool(
    'failing_job',
    {
      description: 'Fixture: fails (a tool error) after a second; only as a task',
      _meta: taskSupport('required'),
    },
    async (extra) => {
      await sleep(1000, extra.signal);
      return { ...text('The job failed'), isError: true };
    },
  );
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
