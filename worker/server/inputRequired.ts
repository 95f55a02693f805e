/**
 * Server -> client requests of an SDK 1.x McpServer, served the MCP 2026-07-28 way: as
 * multi round-trip requests (SEP-2322), with no memory on the server.
 *
 * In 2026-07-28 a server cannot send the client requests. A request that needs the client
 * (tools/call, prompts/get, resources/read, tasks/result) is answered with an
 * InputRequiredResult `{ resultType: 'input_required', inputRequests: { <key>: {method, params} },
 * requestState }`; the client gathers the answers and retries the same request with
 * `inputResponses: { <key>: <result> }` and the echoed `requestState`. The retry may land on any
 * worker of any pod. An unmodified 1.x handler (calling `server.server.elicitInput(...)`,
 * `createMessage(...)`, `listRoots()` or `extra.sendRequest(...)`) works as follows.
 *
 * One InputRequiredRound per client request (one round trip):
 * - `serverParams()` verifies the retry's requestState and the shape of its inputResponses, and
 *   gives the params the 1.x server sees (both members removed). A bad state fails here, before
 *   any handler runs.
 * - The handler runs from the start on every round. Each server -> client request it sends goes
 *   to `request()`: answered from the answers of earlier rounds (kept in requestState; they stand,
 *   a retry cannot change them) or from this retry's inputResponses, the handler carries on;
 *   unanswered, it stays pending and becomes an input request of this round.
 * - `settle()` gives the client's answer: the handler's own result once it returns, or, as soon as
 *   the handler waits on pending requests and has sent nothing new for a few event-loop turns
 *   (so requests sent together, e.g. by Promise.all, are asked together), an InputRequiredResult
 *   listing them. The handler's pending requests are then rejected (-32800) so it unwinds.
 *
 * Assumption: handlers are deterministic up to their input requests: re-run with the same
 * params and the same answers, they send the same requests in the same order. Side effects
 * before the last input request run once per round (as in any MRTR server that keeps no state).
 *
 * Keys: a handler names an input request's key with `_meta['mcp-event-gateway/inputKey']` in the
 * request's params (e.g. `elicitInput({ message, requestedSchema, _meta: { [INPUT_KEY_META]:
 * 'user_name' } })`); the member is removed before the request goes on the wire. Unnamed
 * requests get `elicitation-<n>`, `sampling-<n>` or `roots-<n>`, n counting that method's requests
 * in the handler's order; a key used twice in one run gets `-<n>` appended the same way.
 *
 * requestState: `v1.<payload>.<mac>`, base64url JSON and an HMAC-SHA256 (key derived from the
 * worker's secret), compared in constant time. The payload binds the state to the request (its
 * method, its name or uri, a digest of its params other than `_meta`, inputResponses and
 * requestState, and the principal when given) and expires (REQUEST_STATE_TTL_MS after it was
 * issued); it carries every answer the handler used so far, so a flow of many rounds needs no
 * server memory. A state that fails any check is refused with -32602 (no handler runs).
 *
 * inputResponses: must be an object whose values are results (elicitation, sampling or roots);
 * otherwise -32602. A value is checked against the result schema of the method its key asked
 * for when the handler asks it (-32602 when it does not match). Keys the handler does not ask
 * for are ignored; a key it asks for and the client did not answer is asked again.
 *
 * Capabilities: a request the client did not declare the capability for (in the request's
 * `io.modelcontextprotocol/clientCapabilities`) is rejected at once with -32021, whose
 * `data.requiredCapabilities` names what is missing (e.g. `{ sampling: {} }`); it is never
 * listed as an input request. A handler may catch that and carry on (asking only what the
 * client supports); when the request instead fails (a JSON-RPC error, or a tools/call result
 * with isError), the client gets the -32021 error.
 *
 * Wiring (the worker): the 1.x server checks client capabilities itself before elicitInput (and
 * createMessage with tools): initialize the server serving 2026 requests with
 * ROUND_SERVER_CLIENT_CAPABILITIES and let the round check each request's own. A server request
 * belongs to the round of the request its handler serves: the transport is told that request's
 * id (relatedRequestId) when the handler passes it (extra.sendRequest always does); otherwise
 * deliver the client's request inside `AsyncLocalStorage.run(round, ...)`: the SDK calls the
 * handler in that async context, so the transport's send() finds the round with getStore().
 * Feed request()'s outcome back to the server as the client's response (result, or error with
 * the RoundError's code, message and data).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import {
  CreateMessageResultSchema,
  ElicitResultSchema,
  ErrorCode,
  ListRootsResultSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { ZodTypeAny } from 'zod';
import { RPC_ERRORS } from '../../shared/protocol';
import { MODERN_RPC_ERRORS } from '../../shared/mcpTransports';

/** The `_meta` member of a server -> client request's params naming its input request's key. */
export const INPUT_KEY_META = 'mcp-event-gateway/inputKey';

/** The client's requests whose answer may be an InputRequiredResult (SEP-2322, tasks). */
export const INPUT_REQUIRED_METHODS: ReadonlySet<string> = new Set([
  'tools/call',
  'prompts/get',
  'resources/read',
  'tasks/result',
]);

/**
 * The client capabilities to initialize a 1.x server serving 2026-07-28 requests with: all of
 * them, so the SDK's own checks let every request through to the round, which checks each
 * request's declared capabilities.
 */
export const ROUND_SERVER_CLIENT_CAPABILITIES = {
  elicitation: { form: {}, url: {} },
  sampling: { tools: {} },
  roots: {},
};

/** How long a requestState is accepted after it was issued. */
export const REQUEST_STATE_TTL_MS = 10 * 60_000;

/**
 * Event-loop turns without a new request, while the handler waits on unanswered ones, before
 * the round answers input_required (requests sent together are asked together).
 */
const QUIET_TURNS = 3;

/** MCP 2026-07-28's MissingRequiredClientCapability error (HTTP 400). */
export const MISSING_CLIENT_CAPABILITY = MODERN_RPC_ERRORS.missingClientCapability;

const STATE_VERSION = 'v1';
const INVALID_STATE_DATA = { reason: 'invalid_request_state' };

/** A JSON-RPC error of a round, as the client gets it. */
export class RoundError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RoundError';
  }
}

interface InputKind {
  /** The key prefix of unnamed requests. */
  base: string;
  /** The client's result, as the 1.x SDK parses it. */
  result: ZodTypeAny;
  /** The client capabilities the request needs, in ClientCapabilities shape. */
  required(params: Record<string, unknown>): Record<string, Record<string, unknown>>;
}

const INPUT_KINDS: Record<string, InputKind> = {
  'elicitation/create': {
    base: 'elicitation',
    result: ElicitResultSchema,
    required: (params) => ({ elicitation: params.mode === 'url' ? { url: {} } : { form: {} } }),
  },
  'sampling/createMessage': {
    base: 'sampling',
    result: CreateMessageResultSchema,
    required: (params) => ({
      sampling: params.tools !== undefined || params.toolChoice !== undefined ? { tools: {} } : {},
    }),
  },
  'roots/list': {
    base: 'roots',
    result: ListRootsResultSchema,
    required: () => ({ roots: {} }),
  },
};

/** What requestState carries (signed). */
interface StatePayload {
  /** The request's method. */
  m: string;
  /** The request's name (tools/call, prompts/get), uri (resources/read) or taskId. */
  n: string;
  /** Digest of the request's params other than _meta, inputResponses and requestState. */
  d: string;
  /** Digest of the principal, when the round has one. */
  p?: string;
  /** Expiry, epoch ms. */
  e: number;
  /** Every answer the handler used so far, by key. */
  a: Record<string, Record<string, unknown>>;
}

interface PendingInput {
  method: string;
  params: Record<string, unknown>;
  resolve: (result: Record<string, unknown>) => void;
  reject: (error: RoundError) => void;
}

export interface InputRequiredRoundOptions {
  /** Signs requestState (the worker passes config.jwtSecret). */
  secret: string;
  /** The client's request method. */
  method: string;
  /** The client's params (holds inputResponses, requestState). */
  params: Record<string, unknown>;
  /** The request's `_meta['io.modelcontextprotocol/clientCapabilities']`. */
  clientCapabilities: Record<string, unknown>;
  /** Who asks (e.g. the token's subject): a state issued to another principal is refused. */
  principal?: string;
  /** requestState lifetime; REQUEST_STATE_TTL_MS by default. */
  stateTtlMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** One client request of the 2026-07-28 era run on a 1.x server: see the module comment. */
export class InputRequiredRound {
  private readonly key: Buffer;
  private verified?: {
    params: Record<string, unknown>;
    responses: Record<string, Record<string, unknown>>;
    earlier: Record<string, Record<string, unknown>>;
  };
  /** Answers used in this run (from earlier rounds or this retry): the next state's. */
  private readonly used: Record<string, Record<string, unknown>> = {};
  private readonly pending = new Map<string, PendingInput>();
  private readonly keyCounts = new Map<string, number>();
  private readonly usedKeys = new Set<string>();
  /** A malformed answer of the client: the request fails with it, whatever the handler does. */
  private protocolError?: RoundError;
  /** What requests refused for a capability the client lacks needed, all of them merged. */
  private readonly missingCapabilities: Record<string, Record<string, unknown>> = {};
  /** Bumped by every request(): the quiet check restarts. */
  private activity = 0;
  private quiet = false;
  private finished = false;
  private answer?: Promise<Record<string, unknown>>;
  private onQuiet?: () => void;

  constructor(private readonly opts: InputRequiredRoundOptions) {
    this.key = createHmac('sha256', opts.secret).update('mcp-event-gateway requestState').digest();
  }

  /**
   * The params to hand the 1.x server (inputResponses and requestState removed). Throws
   * RoundError -32602 for a bad, tampered, expired or foreign requestState and for malformed
   * inputResponses.
   */
  serverParams(): Record<string, unknown> {
    return this.verify().params;
  }

  /**
   * A server -> client request the handler sent during this request: resolves with the client's
   * answer (this retry's inputResponses or an earlier round's), rejects with a RoundError
   * (-32021 missing capability, -32602 malformed answer, -32601 a method the client has no
   * answer for, -32603 on a request that may not ask, -32800 once the round is answered), or
   * stays pending (an input request of this round).
   */
  request(message: {
    method: string;
    params?: Record<string, unknown>;
  }): Promise<Record<string, unknown>> {
    this.activity += 1;
    this.quiet = false;
    try {
      const { earlier, responses } = this.verify();
      if (this.finished) throw released();
      const kind = INPUT_KINDS[message.method];
      if (!kind) {
        throw new RoundError(
          ErrorCode.MethodNotFound,
          `Method not found: ${message.method} (in MCP 2026-07-28 a server may ask the client only elicitation/create, sampling/createMessage and roots/list)`,
        );
      }
      if (!INPUT_REQUIRED_METHODS.has(this.opts.method)) {
        throw new RoundError(
          ErrorCode.InternalError,
          `${message.method} cannot be asked during ${this.opts.method}: in MCP 2026-07-28 only ${[...INPUT_REQUIRED_METHODS].join(', ')} may ask the client for input`,
        );
      }
      const { key, params } = this.keyOf(kind, message.params ?? {});
      const missing = missingCapabilities(kind.required(params), this.opts.clientCapabilities);
      if (missing) {
        for (const [capability, members] of Object.entries(missing)) {
          this.missingCapabilities[capability] = {
            ...this.missingCapabilities[capability],
            ...members,
          };
        }
        throw missingCapabilityError(missing, `${message.method} (input '${key}')`);
      }
      const answer = earlier[key] ?? responses[key];
      if (answer !== undefined) {
        const parsed = kind.result.safeParse(answer);
        if (!parsed.success) {
          this.protocolError ??= new RoundError(
            ErrorCode.InvalidParams,
            `inputResponses.${key} is not a ${message.method} result: ${parsed.error.issues
              .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
              .join('; ')}`,
          );
          throw this.protocolError;
        }
        this.used[key] = answer;
        return Promise.resolve(answer);
      }
      return new Promise((resolve, reject) => {
        this.pending.set(key, { method: message.method, params, resolve, reject });
        this.awaitQuiet();
      });
    } catch (error) {
      return Promise.reject(error instanceof RoundError ? error : internal(error));
    }
  }

  /**
   * The request's final JSON-RPC result: the handler's own result (with `resultType: 'complete'`
   * added), or an InputRequiredResult once the handler waits on input requests. `result` is the
   * 1.x server's answer: it resolves
   * with the result, or rejects with the JSON-RPC error (an object with code, message, data).
   * Rejects with a RoundError.
   */
  settle(result: Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
    this.answer ??= new Promise<Record<string, unknown>>((resolve, reject) => {
      const finish = (outcome: () => Record<string, unknown>) => {
        if (this.finished) return;
        this.finished = true;
        this.onQuiet = undefined;
        try {
          resolve(outcome());
        } catch (error) {
          reject(error instanceof RoundError ? error : internal(error));
        } finally {
          this.release();
        }
      };
      try {
        this.verify();
      } catch (error) {
        finish(() => {
          throw error;
        });
        return;
      }
      result.then(
        (value) => finish(() => this.completed(value)),
        (error: unknown) => finish(() => this.failed(error)),
      );
      this.onQuiet = () => finish(() => this.inputRequired());
      if (this.quiet) this.onQuiet();
    });
    return this.answer;
  }

  private completed(value: Record<string, unknown>): Record<string, unknown> {
    if (this.protocolError) throw this.protocolError;
    const capabilityError = this.capabilityError();
    if (capabilityError && this.opts.method === 'tools/call' && value.isError === true) {
      throw capabilityError;
    }
    // Every 2026-07-28 result says its kind; the 1.x server's never do.
    return { ...value, resultType: value.resultType ?? 'complete' };
  }

  private failed(error: unknown): never {
    if (this.protocolError) throw this.protocolError;
    const capabilityError = this.capabilityError();
    if (capabilityError) throw capabilityError;
    if (error instanceof RoundError) throw error;
    const detail = error as { code?: unknown; message?: unknown; data?: unknown } | undefined;
    if (typeof detail?.code === 'number') {
      throw new RoundError(detail.code, String(detail.message ?? ''), detail.data);
    }
    throw internal(error);
  }

  /** The request failed for want of capabilities: -32021 naming all those its requests needed. */
  private capabilityError(): RoundError | undefined {
    if (Object.keys(this.missingCapabilities).length === 0) return undefined;
    return missingCapabilityError(this.missingCapabilities, this.opts.method);
  }

  private inputRequired(): Record<string, unknown> {
    if (this.protocolError) throw this.protocolError;
    const inputRequests: Record<string, { method: string; params: Record<string, unknown> }> = {};
    for (const [key, { method, params }] of this.pending) inputRequests[key] = { method, params };
    return { resultType: 'input_required', inputRequests, requestState: this.issueState() };
  }

  /** Rejects what is still pending, so the handler unwinds (its answer is no longer awaited). */
  private release(): void {
    for (const pending of this.pending.values()) pending.reject(released());
    this.pending.clear();
  }

  /** Answers input_required once the handler has sent nothing new for QUIET_TURNS turns. */
  private awaitQuiet(): void {
    const seen = this.activity;
    let turns = 0;
    const tick = () => {
      if (this.finished || seen !== this.activity || this.pending.size === 0) return;
      if (++turns < QUIET_TURNS) {
        setImmediate(tick);
        return;
      }
      this.quiet = true;
      this.onQuiet?.();
    };
    setImmediate(tick);
  }

  private keyOf(
    kind: InputKind,
    raw: Record<string, unknown>,
  ): { key: string; params: Record<string, unknown> } {
    const meta = isPlainObject(raw._meta) ? { ...raw._meta } : undefined;
    const named = meta?.[INPUT_KEY_META];
    if (meta) delete meta[INPUT_KEY_META];
    if (named !== undefined && (typeof named !== 'string' || named === '' || named.length > 128)) {
      throw new RoundError(
        ErrorCode.InternalError,
        `_meta['${INPUT_KEY_META}'] must be a string of 1 to 128 characters`,
      );
    }
    const params: Record<string, unknown> = { ...raw };
    delete params._meta;
    if (meta && Object.keys(meta).length > 0) params._meta = meta;
    const base = named ?? kind.base;
    let n = this.keyCounts.get(base) ?? 0;
    let key: string;
    do {
      n += 1;
      key = named !== undefined && n === 1 ? base : `${base}-${n}`;
    } while (this.usedKeys.has(key));
    this.keyCounts.set(base, n);
    this.usedKeys.add(key);
    return { key, params };
  }

  // ---- requestState ----

  private verify(): NonNullable<InputRequiredRound['verified']> {
    if (this.verified) return this.verified;
    const { inputResponses, requestState, ...params } = this.opts.params;
    const responses = parseInputResponses(inputResponses);
    let earlier: StatePayload['a'] = {};
    if (requestState !== undefined) earlier = this.openState(requestState, params).a;
    this.verified = { params, responses, earlier };
    return this.verified;
  }

  private issueState(): string {
    const { params } = this.verify();
    const payload: StatePayload = {
      m: this.opts.method,
      n: requestName(params),
      d: paramsDigest(params),
      ...(this.opts.principal !== undefined && { p: digest(this.opts.principal) }),
      e: this.now() + (this.opts.stateTtlMs ?? REQUEST_STATE_TTL_MS),
      a: this.used,
    };
    const body = `${STATE_VERSION}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    return `${body}.${this.mac(body).toString('base64url')}`;
  }

  private openState(state: unknown, params: Record<string, unknown>): StatePayload {
    if (typeof state !== 'string') throw invalidState('requestState must be a string');
    const parts = state.split('.');
    if (parts.length !== 3 || parts[0] !== STATE_VERSION) {
      throw invalidState('requestState is not one this server issued');
    }
    const body = `${parts[0]}.${parts[1]}`;
    const given = Buffer.from(parts[2], 'base64url');
    const expected = this.mac(body);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw invalidState('requestState failed its integrity check');
    }
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as StatePayload;
    if (payload.e <= this.now()) throw invalidState('requestState expired');
    if (
      payload.m !== this.opts.method ||
      payload.n !== requestName(params) ||
      payload.d !== paramsDigest(params)
    ) {
      throw invalidState('requestState belongs to another request');
    }
    const principal = this.opts.principal === undefined ? undefined : digest(this.opts.principal);
    if (payload.p !== principal) throw invalidState('requestState belongs to another principal');
    return payload;
  }

  private mac(body: string): Buffer {
    return createHmac('sha256', this.key).update(body).digest();
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}

function released(): RoundError {
  return new RoundError(
    RPC_ERRORS.requestCancelled,
    'Request cancelled: the client is asked for input (InputRequiredResult) and retries the request',
  );
}

function internal(error: unknown): RoundError {
  return new RoundError(
    ErrorCode.InternalError,
    error instanceof Error ? error.message : String(error),
  );
}

function missingCapabilityError(
  missing: Record<string, Record<string, unknown>>,
  what: string,
): RoundError {
  const names = Object.entries(missing).flatMap(([capability, members]) =>
    Object.keys(members).length === 0
      ? [capability]
      : Object.keys(members).map((member) => `${capability}.${member}`),
  );
  return new RoundError(
    MISSING_CLIENT_CAPABILITY,
    `Missing client capabilities for ${what}: ${names.join(', ')} (not in the request's io.modelcontextprotocol/clientCapabilities)`,
    { requiredCapabilities: missing },
  );
}

function invalidState(why: string): RoundError {
  return new RoundError(
    ErrorCode.InvalidParams,
    `Invalid or expired requestState: ${why}`,
    INVALID_STATE_DATA,
  );
}

/** inputResponses as sent: an object of results (elicitation, sampling or roots), or absent. */
function parseInputResponses(value: unknown): Record<string, Record<string, unknown>> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) {
    throw new RoundError(ErrorCode.InvalidParams, 'inputResponses must be an object of results');
  }
  for (const [key, response] of Object.entries(value)) {
    const fits =
      isPlainObject(response) &&
      Object.values(INPUT_KINDS).some((kind) => kind.result.safeParse(response).success);
    if (!fits) {
      throw new RoundError(
        ErrorCode.InvalidParams,
        `inputResponses.${key} is not an elicitation, sampling or roots result`,
      );
    }
  }
  return value as Record<string, Record<string, unknown>>;
}

/**
 * The capabilities `required` names that `declared` lacks (ClientCapabilities shape), or
 * undefined. A bare `elicitation: {}` declares form elicitation (its meaning before modes).
 */
function missingCapabilities(
  required: Record<string, Record<string, unknown>>,
  declared: Record<string, unknown>,
): Record<string, Record<string, unknown>> | undefined {
  const missing: Record<string, Record<string, unknown>> = {};
  for (const [capability, members] of Object.entries(required)) {
    const have = declared[capability];
    if (!isPlainObject(have)) {
      missing[capability] = members;
      continue;
    }
    const bareElicitation =
      capability === 'elicitation' && have.form === undefined && have.url === undefined;
    const lacking = Object.keys(members).filter(
      (member) => have[member] === undefined && !(bareElicitation && member === 'form'),
    );
    if (lacking.length > 0) {
      missing[capability] = Object.fromEntries(lacking.map((member) => [member, members[member]]));
    }
  }
  return Object.keys(missing).length > 0 ? missing : undefined;
}

function requestName(params: Record<string, unknown>): string {
  const name = params.name ?? params.uri ?? params.taskId;
  return typeof name === 'string' ? name : '';
}

/** The request's salient params (all but _meta), as a digest independent of member order. */
function paramsDigest(params: Record<string, unknown>): string {
  const salient: Record<string, unknown> = { ...params };
  delete salient._meta;
  return digest(canonicalJson(salient));
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isPlainObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .filter((key) => value[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
