/** One SSE stream read with a raw `http` GET and a minimal parser (event name + data). */
import http from 'node:http';

export interface SseStream {
  connectionId: string;
  close(): void;
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
    let carry = '';
    let event = '';
    let data: string[] = [];
    let welcomed = false;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no welcome event within ${timeoutMs} ms`));
    }, timeoutMs);
    const dispatch = () => {
      const text = data.join('\n');
      const name = event || 'message';
      event = '';
      data = [];
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
    };
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
        res.on('data', (chunk: string) => {
          const lines = (carry + chunk).split('\n');
          carry = lines.pop() ?? '';
          for (const line of lines) {
            if (line === '') {
              if (data.length > 0) dispatch();
              else event = '';
            } else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
        });
      },
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      if (!welcomed) reject(err);
    });
  });
}

/** POSTs JSON through `agent` (with a bearer token if given); resolves with the status and parsed body. */
export function postJson(
  agent: http.Agent,
  url: string,
  token: string | undefined,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }),
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(payload),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { raw: text.slice(0, 200) };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}
