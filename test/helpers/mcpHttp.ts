/** Raw Streamable HTTP requests, for tests that check what the SDK client hides. */

/** A 2025-11-25 `initialize` request, as a client sends it. */
export function initializeRequest(clientName = 'raw'): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: clientName, version: '1' },
    },
  };
}

/** POSTs `initialize` to `<baseUrl>/mcp` with a JSON-only Accept (any `headers` added). */
export function postInitialize(
  baseUrl: string,
  token: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${baseUrl}/mcp`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${token}`,
      'Content-Type': 'application/json',
      Accept: 'application/json',
      ...headers,
    },
    body: JSON.stringify(initializeRequest()),
  });
}

/** Opens a session and returns its Mcp-Session-Id; throws unless the gateway answered 200. */
export async function initializeSession(baseUrl: string, token: string): Promise<string> {
  const res = await postInitialize(baseUrl, token);
  if (res.status !== 200) throw new Error(`initialize: HTTP ${res.status} ${await res.text()}`);
  return res.headers.get('mcp-session-id')!;
}
