/**
 * The benchmark's raw HTTP client pieces: an SSE parser, one SSE stream read with a raw `http`
 * GET, and requests through a keep-alive agent. Cheap on purpose: the client shares the cores
 * with the servers it measures.
 */
import http from 'node:http';

export interface SseStream {
  connectionId: string;
  close(): void;
}

/**
 * Feeds text chunks of an SSE body; calls `onEvent` for each complete event with data (event
 * name, its data lines joined by newlines). Events with no data line (priming events) are skipped.
 */
export function sseParser(onEvent: (event: string, data: string) => void): (chunk: string) => void {
  let carry = '';
  let event = '';
  let data: string[] = [];
  return (chunk) => {
    const lines = (carry + chunk).split('\n');
    carry = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '') {
        if (data.length > 0) {
          const text = data.join('\n');
          const name = event || 'message';
          data = [];
          event = '';
          onEvent(name, text);
        } else event = '';
      } else if (line.startsWith('event:')) event = line.slice(6).trimStart();
      else if (line.startsWith('data:')) data.push(line.slice(line.charAt(5) === ' ' ? 6 : 5));
    }
  };
}

/**
 * Opens `GET /mcp/sse` and calls `onEvent` for each complete event; resolves with the welcome's
 * connectionId.
 */
export function openSseStream(
  url: string,
  token: string,
  onEvent: (event: string, data: string) => void,
  timeoutMs = 10_000,
): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    let welcomed = false;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no welcome event within ${timeoutMs} ms`));
    }, timeoutMs);
    const parse = sseParser((name, text) => {
      if (!welcomed && name === 'mcp-notification') {
        const connectionId = (JSON.parse(text) as { connectionId?: string }).connectionId;
        if (connectionId) {
          welcomed = true;
          clearTimeout(timer);
          resolve({ connectionId, close: () => req.destroy() });
          return;
        }
      }
      onEvent(name, text);
    });
    const req = http.get(
      `${url}/mcp/sse`,
      { agent: false, headers: { Authorization: `Bearer ${token}` } },
      (res) => {
        if (res.statusCode !== 200) {
          clearTimeout(timer);
          res.resume();
          reject(new Error(`GET /mcp/sse: HTTP ${res.statusCode}`));
          return;
        }
        res.setEncoding('utf8');
        res.on('data', parse);
      },
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      if (!welcomed) reject(err);
    });
  });
}

export interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request through `agent` (keep-alive), its whole body read as text. */
export function httpRequest(
  agent: http.Agent,
  url: string,
  method: string,
  headers: http.OutgoingHttpHeaders,
  payload?: string,
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent,
        headers:
          payload === undefined
            ? headers
            : { ...headers, 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** POSTs JSON through `agent` (with a bearer token if given); resolves with the status and parsed body. */
export async function postJson(
  agent: http.Agent,
  url: string,
  token: string | undefined,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const reply = await httpRequest(
    agent,
    url,
    'POST',
    {
      ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
      'Content-Type': 'application/json',
    },
    JSON.stringify(body),
  );
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(reply.body) as Record<string, unknown>;
  } catch {
    parsed = { raw: reply.body.slice(0, 200) };
  }
  return { status: reply.status, body: parsed };
}
