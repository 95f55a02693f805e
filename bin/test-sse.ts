/**
 * `npm run test-sse`: the original document's Node client. Connects to SERVER_URL's SSE stream
 * with MCP_AUTH_TOKEN, lists the tools, calls one, prints every event that arrives, and exits
 * 0 when both answers came back (non-zero on any failure or after TEST_SSE_TIMEOUT_MS).
 */
import { EventSource } from 'eventsource';

const serverUrl = (process.env.SERVER_URL ?? 'http://localhost:3000').replace(/\/$/, '');
const token = process.env.MCP_AUTH_TOKEN;
const timeoutMs = Number(process.env.TEST_SSE_TIMEOUT_MS ?? 15_000);
const EVENT_TYPES = [
  'mcp-notification',
  'mcp-response',
  'tool-result',
  'mcp-error',
  'heartbeat',
  'connection-status',
];

interface EventData {
  type?: string;
  connectionId?: string;
  requestId?: string;
  method?: string;
  result?: { tools?: { name: string }[] };
  error?: { code: number; message: string };
}

async function main(): Promise<void> {
  if (!token) fail('MCP_AUTH_TOKEN is not set (npm start prints tokens when JWT_SECRET is unset)');
  const authorization = `Bearer ${token}`;
  const es = new EventSource(`${serverUrl}/mcp/sse`, {
    fetch: (input, init) =>
      fetch(input, { ...init, headers: { ...init?.headers, Authorization: authorization } }),
  });
  const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
  const pending = new Map<string, string>();
  let answered = 0; // tools/list and tools/call both answer

  const post = async (connectionId: string, message: Record<string, unknown>): Promise<void> => {
    const res = await fetch(`${serverUrl}/mcp/sse/send`, {
      method: 'POST',
      headers: { Authorization: authorization, 'Content-Type': 'application/json' },
      body: JSON.stringify({ connectionId, message }),
    });
    const body = (await res.json()) as { requestId?: string; error?: { message: string } };
    if (res.status !== 202 || !body.requestId)
      fail(`send failed: ${res.status} ${JSON.stringify(body)}`);
    pending.set(body.requestId, String(message.method));
    console.log(`→ ${String(message.method)} accepted as ${body.requestId}`);
  };

  es.onerror = (err) =>
    fail(`SSE error: ${err.message ?? err.type}${err.code ? ` (HTTP ${err.code})` : ''}`);
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (event) => {
      const data = JSON.parse(event.data) as EventData;
      console.log(`← ${type} [id ${event.lastEventId}]`, JSON.stringify(data));
      if (type === 'mcp-notification' && data.connectionId) {
        console.log(`Connected: ${data.connectionId}`);
        void (async () => {
          await post(data.connectionId!, { method: 'tools/list' });
          await post(data.connectionId!, {
            method: 'tools/call',
            params: { name: 'list_projects', arguments: {} },
          });
        })().catch((err: unknown) => fail(String(err)));
      }
      if (type === 'mcp-error' && data.requestId && pending.has(data.requestId)) {
        fail(`${pending.get(data.requestId)} failed: ${data.error?.message}`);
      }
      if (
        (type === 'mcp-response' || type === 'tool-result') &&
        data.requestId &&
        pending.has(data.requestId)
      ) {
        if (type === 'mcp-response' && data.result?.tools) {
          console.log(`Tools: ${data.result.tools.map((t) => t.name).join(', ')}`);
        }
        if (type === 'tool-result' && (data as { metadata?: unknown }).metadata) return; // progress
        pending.delete(data.requestId);
        if (++answered === 2) {
          clearTimeout(timer);
          es.close();
          console.log('test-sse: OK');
          process.exit(0);
        }
      }
    });
  }
}

function fail(message: string): never {
  console.error(`test-sse: FAILED: ${message}`);
  process.exit(1);
}

void main();
