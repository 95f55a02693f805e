import { errors, type GatewayError } from '../../shared/errors';
import {
  MCP_LOG_LEVELS,
  MCP_META,
  MODERN_PROTOCOL_VERSIONS,
  MODERN_RPC_ERRORS,
  SUPPORTED_PROTOCOL_VERSIONS,
  decodeHeaderValue,
  isModernVersion,
} from '../../shared/mcpTransports';
import { RPC_ERRORS } from '../../shared/protocol';
import { truncate } from '../../shared/text';

/**
 * Which era a POST /mcp belongs to, decided per request from its body as MCP 2026-07-28 says
 * (basic/transports, SEP-2575, SEP-2243): a request whose `params._meta` names a protocol
 * version (the envelope claim) is a 2026-07-28 request; one without it (initialize, a session's
 * requests, batches, posted responses) is served by the 2025 session transport as before. The
 * headers are checked against the body, with the errors and HTTP statuses the spec prescribes.
 * Pure: no I/O.
 */

/** The standard request headers SEP-2243 mirrors from the body (undefined when absent). */
export interface StandardHeaders {
  protocolVersion?: string;
  method?: string;
  name?: string;
}

/** A 2026-07-28 request, its envelope checked. */
export interface ModernRequest {
  id: string | number;
  method: string;
  params: Record<string, unknown>;
  /** The revision its `_meta` names (one of MODERN_PROTOCOL_VERSIONS). */
  version: string;
  clientCapabilities: Record<string, unknown>;
}

export type EraSelection =
  | { era: 'legacy' }
  | { era: 'modern'; kind: 'request'; request: ModernRequest }
  /** A 2026-07-28 notification: this revision defines none over HTTP; accepted and dropped. */
  | { era: 'modern'; kind: 'notification' };

/** Methods whose `Mcp-Name` header mirrors a body field, and which field. */
const NAME_SOURCES: Readonly<Record<string, 'name' | 'uri' | 'taskId'>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  // The Tasks extension: Mcp-Name carries the task id, for routing by intermediaries.
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

const LOG_LEVELS: ReadonlySet<string> = new Set(MCP_LOG_LEVELS);

/**
 * The era of a parsed POST body and its headers; throws the prescribed GatewayError (with its
 * JSON-RPC code and data) for a 2026-07-28 request that breaks the rules.
 */
export function selectEra(body: unknown, rawHeaders: StandardHeaders): EraSelection {
  const headers = trimmed(rawHeaders);
  const headerNamesModern =
    headers.protocolVersion !== undefined && isModernVersion(headers.protocolVersion);
  if (Array.isArray(body)) {
    if (body.some((element) => claimOf(paramsOf(element)) !== undefined)) {
      throw errors.invalidRequest(
        'JSON-RPC batches may not hold requests of protocol revision 2026-07-28 or later',
      );
    }
    return { era: 'legacy' };
  }
  if (!isObject(body) || typeof body.method !== 'string') return { era: 'legacy' };
  const method = body.method;
  const params = paramsOf(body);
  const isRequest = typeof body.id === 'string' || typeof body.id === 'number';
  const claim = claimOf(params);

  if (!isRequest) {
    if (claim === undefined && !headerNamesModern) return { era: 'legacy' };
    const version = claim !== undefined ? claim.version : headers.protocolVersion;
    if (claim !== undefined && typeof version !== 'string') {
      throw invalidEnvelope(`${MCP_META.protocolVersion}: expected a protocol version string`);
    }
    if (headers.protocolVersion !== undefined && headers.protocolVersion !== version) {
      throw mismatch(
        `the MCP-Protocol-Version header names ${truncate(headers.protocolVersion)}, not ${truncate(version)}`,
      );
    }
    if (claim !== undefined && !isModernVersion(String(version))) return { era: 'legacy' };
    if (headers.method !== undefined && headers.method !== method) {
      throw mismatch(
        `the body names method ${truncate(method)} but the Mcp-Method header names ${truncate(headers.method)}`,
      );
    }
    return { era: 'modern', kind: 'notification' };
  }
  const id = body.id as string | number;

  if (method === 'initialize' && !claimsModernValidly(params)) {
    if (headerNamesModern) {
      throw mismatch(
        `an initialize request (the 2025 handshake) came with MCP-Protocol-Version ${truncate(headers.protocolVersion)}`,
      );
    }
    return { era: 'legacy' };
  }
  if (claim === undefined) {
    if (!headerNamesModern) return { era: 'legacy' };
    const missing =
      params === undefined || !isObject(params._meta) ? ['_meta'] : missingKeys(params._meta);
    throw errors.rpc(
      400,
      RPC_ERRORS.invalidParams,
      `Invalid params: MCP-Protocol-Version names ${truncate(headers.protocolVersion)}, but the request lacks the ` +
        `per-request _meta key(s): ${(missing.length > 0 ? missing : [MCP_META.protocolVersion]).join(', ')}`,
      { envelope: { missing } },
    );
  }

  const meta = claim.meta;
  const issue = envelopeIssue(meta);
  if (issue) throw invalidEnvelope(issue);
  const version = claim.version as string;
  if (headers.protocolVersion !== undefined && headers.protocolVersion !== version) {
    throw mismatch(
      `the body's _meta names protocol version ${truncate(version)} but the MCP-Protocol-Version header names ${truncate(headers.protocolVersion)}`,
    );
  }
  if (headers.method !== undefined && headers.method !== method) {
    throw mismatch(
      `the body names method ${truncate(method)} but the Mcp-Method header names ${truncate(headers.method)}`,
    );
  }
  if (!(MODERN_PROTOCOL_VERSIONS as readonly string[]).includes(version)) {
    throw errors.rpc(
      400,
      MODERN_RPC_ERRORS.unsupportedProtocolVersion,
      `Unsupported protocol version: ${truncate(version)}`,
      { supported: [...SUPPORTED_PROTOCOL_VERSIONS], requested: truncate(version) },
    );
  }
  checkStandardHeaders(headers, method, params ?? {});
  return {
    era: 'modern',
    kind: 'request',
    request: {
      id,
      method,
      params: params ?? {},
      version,
      clientCapabilities: meta[MCP_META.clientCapabilities] as Record<string, unknown>,
    },
  };
}

/**
 * SEP-2243's presence and value checks of a 2026-07-28 request's standard headers (after the
 * version and method cross-checks): MCP-Protocol-Version and Mcp-Method are required; Mcp-Name
 * too where the body has the value it mirrors, which it must equal once decoded.
 */
export function checkStandardHeaders(
  headers: StandardHeaders,
  method: string,
  params: Record<string, unknown>,
): void {
  if (headers.protocolVersion === undefined) {
    throw mismatch('the required MCP-Protocol-Version header is absent');
  }
  if (headers.method === undefined) {
    throw mismatch(
      `the body names method ${truncate(method)} but the required Mcp-Method header is absent`,
    );
  }
  const field = Object.hasOwn(NAME_SOURCES, method) ? NAME_SOURCES[method] : undefined;
  if (field === undefined) return;
  const value = typeof params[field] === 'string' ? (params[field] as string) : undefined;
  if (headers.name === undefined) {
    if (value === undefined) return;
    throw mismatch(`the body carries params.${field} but the required Mcp-Name header is absent`);
  }
  const decoded = decodeHeaderValue(headers.name);
  if (decoded === undefined) {
    throw mismatch('the Mcp-Name header carries an invalid =?base64?...?= value');
  }
  if (value !== undefined && decoded !== value) {
    throw mismatch(
      `the body carries params.${field}="${truncate(value)}" but the Mcp-Name header names "${truncate(decoded)}"`,
    );
  }
}

/** The first problem of a claimed envelope (`_meta`), or undefined when it is well-formed. */
export function envelopeIssue(meta: Record<string, unknown>): string | undefined {
  const missing = missingKeys(meta);
  if (missing.length > 0) return `${missing[0]}: missing`;
  if (typeof meta[MCP_META.protocolVersion] !== 'string') {
    return `${MCP_META.protocolVersion}: expected a protocol version string`;
  }
  if (!isObject(meta[MCP_META.clientCapabilities])) {
    return `${MCP_META.clientCapabilities}: expected an object`;
  }
  const info = meta[MCP_META.clientInfo];
  if (
    info !== undefined &&
    !(isObject(info) && typeof info.name === 'string' && typeof info.version === 'string')
  ) {
    return `${MCP_META.clientInfo}: expected an object with name and version strings`;
  }
  const level = meta[MCP_META.logLevel];
  if (level !== undefined && !(typeof level === 'string' && LOG_LEVELS.has(level))) {
    return `${MCP_META.logLevel}: expected a logging level`;
  }
  const token = meta.progressToken;
  if (token !== undefined && typeof token !== 'string' && typeof token !== 'number') {
    return 'progressToken: expected a string or a number';
  }
  return undefined;
}

function missingKeys(meta: Record<string, unknown>): string[] {
  return [MCP_META.protocolVersion, MCP_META.clientCapabilities].filter((key) => !(key in meta));
}

/**
 * The HTTP status of a 2026-07-28 JSON-RPC error answered as the POST's whole response: the
 * spec's own (an unknown method 404; a missing client capability, a header mismatch or an
 * unsupported version 400); any other error is the request's outcome, on 200.
 */
export function modernErrorStatus(code: number): number {
  if (code === RPC_ERRORS.methodNotFound) return 404;
  if (
    code === MODERN_RPC_ERRORS.missingClientCapability ||
    code === MODERN_RPC_ERRORS.headerMismatch ||
    code === MODERN_RPC_ERRORS.unsupportedProtocolVersion
  ) {
    return 400;
  }
  return 200;
}

/** The status of a reply (a JSON-RPC message, as published) sent as a JSON body. */
export function modernReplyStatus(data: string): number {
  try {
    const code = (JSON.parse(data) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'number' ? modernErrorStatus(code) : 200;
  } catch {
    return 200;
  }
}

/** The envelope claim: `_meta` holding the protocol-version key (whatever its value). */
function claimOf(
  params: Record<string, unknown> | undefined,
): { meta: Record<string, unknown>; version: unknown } | undefined {
  const meta = params?._meta;
  if (!isObject(meta) || !(MCP_META.protocolVersion in meta)) return undefined;
  return { meta, version: meta[MCP_META.protocolVersion] };
}

/** Only a well-formed claim of a modern revision makes an `initialize` a 2026 request. */
function claimsModernValidly(params: Record<string, unknown> | undefined): boolean {
  const claim = claimOf(params);
  return (
    claim !== undefined &&
    typeof claim.version === 'string' &&
    isModernVersion(claim.version) &&
    envelopeIssue(claim.meta) === undefined
  );
}

function paramsOf(message: unknown): Record<string, unknown> | undefined {
  if (!isObject(message)) return undefined;
  return isObject(message.params) ? message.params : undefined;
}

function trimmed(headers: StandardHeaders): StandardHeaders {
  const trim = (value: string | undefined) => value?.replace(/^[\t ]+|[\t ]+$/g, '');
  return {
    protocolVersion: trim(headers.protocolVersion),
    method: trim(headers.method),
    name: trim(headers.name),
  };
}

function mismatch(detail: string): GatewayError {
  return errors.rpc(400, MODERN_RPC_ERRORS.headerMismatch, `Header mismatch: ${detail}`);
}

function invalidEnvelope(issue: string): GatewayError {
  return errors.rpc(
    400,
    RPC_ERRORS.invalidParams,
    `Invalid _meta for protocol revision 2026-07-28: ${issue}`,
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
