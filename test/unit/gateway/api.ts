/** A fetch for the gateway's JSON API: status, headers and the parsed (or raw) body. */
export interface ApiResponse {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
}

export interface ApiRequest {
  method?: string;
  token?: string;
  /** Serialized as JSON unless `rawBody` is given. */
  json?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

export async function api(
  url: string,
  path: string,
  request: ApiRequest = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...request.headers };
  if (request.token) headers.Authorization = `Bearer ${request.token}`;
  let body: string | undefined = request.rawBody;
  if (request.json !== undefined) body = JSON.stringify(request.json);
  if (body !== undefined && !headers['Content-Type']) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${url}${path}`, {
    method: request.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    body,
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (metrics, empty preflight answers)
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** Asserts the project's error shape and returns it. */
export function expectError(
  res: ApiResponse,
  status: number,
  code?: string,
): { code: string; message: string } {
  expect({ status: res.status, body: res.body }).toMatchObject({
    status,
    body: { error: { code: code ?? expect.any(String), message: expect.any(String) } },
  });
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return res.body.error;
}
