import { EventSource } from 'eventsource';

/** One received SSE event, as a client sees it. */
export interface ReceivedEvent {
  event: string;
  id: string;
  data: string;
  /** JSON.parse(data). */
  json: Record<string, unknown>;
  /** Date.now() when it arrived (fault tests measure gaps with it). */
  receivedAt: number;
}

export interface SseClient {
  /** From the welcome event. */
  connectionId: string;
  events: ReceivedEvent[];
  /** Events of one name, in arrival order. */
  named(event: string): ReceivedEvent[];
  /** Resolves with the first (already received or future) event matching, or rejects on timeout. */
  next(predicate: (e: ReceivedEvent) => boolean, timeoutMs?: number): Promise<ReceivedEvent>;
  close(): void;
  source: EventSource;
}

const EVENT_NAMES = [
  'mcp-notification',
  'mcp-response',
  'mcp-error',
  'tool-result',
  'heartbeat',
  'connection-status',
];

/**
 * Opens an SSE stream with the `eventsource` package (Bearer header via its fetch option) and
 * records every event. Resolves once the welcome `mcp-notification` with a connectionId arrived,
 * or for a resume (a `Last-Event-ID` header) its `connection-status` `resumed`.
 */
export async function openSseClient(
  url: string,
  token: string,
  options: { extraEvents?: string[]; timeoutMs?: number; headers?: Record<string, string> } = {},
): Promise<SseClient> {
  const events: ReceivedEvent[] = [];
  const waiters = new Set<{
    predicate: (e: ReceivedEvent) => boolean;
    resolve: (e: ReceivedEvent) => void;
  }>();
  const source = new EventSource(`${url}/mcp/sse`, {
    fetch: (input, init) =>
      fetch(input, {
        ...init,
        headers: { ...init?.headers, ...options.headers, Authorization: `Bearer ${token}` },
      }),
  });
  const record = (name: string) => (msg: MessageEvent) => {
    const received: ReceivedEvent = {
      event: name,
      id: msg.lastEventId,
      data: msg.data,
      json: JSON.parse(msg.data),
      receivedAt: Date.now(),
    };
    events.push(received);
    for (const w of [...waiters]) {
      if (w.predicate(received)) {
        waiters.delete(w);
        w.resolve(received);
      }
    }
  };
  for (const name of [...EVENT_NAMES, ...(options.extraEvents ?? [])])
    source.addEventListener(name, record(name));

  const next = (predicate: (e: ReceivedEvent) => boolean, timeoutMs = 10_000) => {
    const seen = events.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise<ReceivedEvent>((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (e: ReceivedEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(
          new Error(
            `no matching SSE event within ${timeoutMs} ms; got: ${events.map((e) => e.event).join(', ')}`,
          ),
        );
      }, timeoutMs);
      waiters.add(waiter);
    });
  };

  try {
    const welcome = await new Promise<ReceivedEvent>((resolve, reject) => {
      source.onerror = (err) =>
        reject(new Error(`SSE connect failed: ${err.code ?? ''} ${err.message ?? ''}`));
      next(
        (e) =>
          (e.event === 'mcp-notification' && typeof e.json.connectionId === 'string') ||
          (e.event === 'connection-status' && e.json.status === 'resumed'),
        options.timeoutMs,
      ).then(resolve, reject);
    });
    source.onerror = null;
    return {
      connectionId: welcome.json.connectionId as string,
      events,
      named: (event) => events.filter((e) => e.event === event),
      next,
      close: () => source.close(),
      source,
    };
  } catch (err) {
    source.close();
    throw err;
  }
}

/** POST /mcp/sse/send; returns the status and parsed body. */
export async function sendCommand(
  url: string,
  token: string,
  connectionId: string,
  message: Record<string, unknown>,
): Promise<{
  status: number;
  body: { requestId?: string; error?: { code: string; message: string } };
}> {
  const res = await fetch(`${url}/mcp/sse/send`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ connectionId, message }),
  });
  return { status: res.status, body: (await res.json()) as never };
}

/** Calls a tool through the seed API and waits for its final tool-result or mcp-error. */
export async function callTool(
  url: string,
  token: string,
  client: SseClient,
  name: string,
  args: Record<string, unknown> = {},
  timeoutMs = 10_000,
): Promise<ReceivedEvent> {
  const { status, body } = await sendCommand(url, token, client.connectionId, {
    method: 'tools/call',
    params: { name, arguments: args },
  });
  if (status !== 202) throw new Error(`send ${name}: HTTP ${status} ${JSON.stringify(body)}`);
  return client.next(
    (e) =>
      e.json.requestId === body.requestId &&
      (e.event === 'mcp-error' || (e.event === 'tool-result' && e.json.metadata === undefined)),
    timeoutMs,
  );
}
