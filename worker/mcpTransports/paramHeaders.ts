import { MODERN_RPC_ERRORS, decodeHeaderValue } from '../../shared/mcpTransports';
import type { ErrorDetail } from '../../shared/protocol';
import { truncate } from '../../shared/text';

/**
 * SEP-2243's custom headers: a tool's `inputSchema` may mark properties with `x-mcp-header`, and
 * a 2026-07-28 client then mirrors each one's argument into `Mcp-Param-{Name}`. The server
 * checks them against the body (it processes the body): a value in the arguments needs its
 * header, equal once decoded; else -32020 (400). Pure.
 */

/** One `x-mcp-header` of a tool: the header name and where the argument sits. */
export interface ParamHeaderDeclaration {
  headerName: string;
  path: string[];
  type?: string;
}

const X_MCP_HEADER = 'x-mcp-header';
/** RFC 9110 token: what a header name part may be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Where a declaration is out of the `properties`-only chain (the tool definition is invalid). */
const UNREACHABLE_KEYWORDS = [
  'items',
  'prefixItems',
  'contains',
  'additionalProperties',
  'unevaluatedProperties',
  'unevaluatedItems',
  'propertyNames',
  'patternProperties',
  'dependentSchemas',
  'oneOf',
  'anyOf',
  'allOf',
  'not',
  'if',
  'then',
  'else',
  '$defs',
  'definitions',
];
const OBJECT_VALUED = new Set(['patternProperties', 'dependentSchemas', '$defs', 'definitions']);
const DECIMAL = /^-?\d+(\.\d+)?$/;

/**
 * The `x-mcp-header` declarations of an input schema, statically reachable through
 * `properties` only; undefined when the tool definition breaks the rules (a client excludes
 * such a tool, so there is nothing to check against).
 */
export function paramHeaderDeclarations(
  inputSchema: unknown,
): ParamHeaderDeclaration[] | undefined {
  const declarations: ParamHeaderDeclaration[] = [];
  const seen = new Set<string>();
  const visit = (node: unknown, path: string[], reachable: boolean): boolean => {
    if (typeof node !== 'object' || node === null) return true;
    const schema = node as Record<string, unknown>;
    if (X_MCP_HEADER in schema) {
      const name = schema[X_MCP_HEADER];
      if (!reachable || path.length === 0) return false;
      if (typeof name !== 'string' || !TOKEN.test(name) || seen.has(name.toLowerCase())) {
        return false;
      }
      const type = typeof schema.type === 'string' ? schema.type : undefined;
      // `number` is not permitted either (clients drop such a tool), but its header is checked.
      if (type !== 'string' && type !== 'integer' && type !== 'boolean' && type !== 'number') {
        return false;
      }
      seen.add(name.toLowerCase());
      declarations.push({ headerName: name, path, type });
    }
    const properties = schema.properties;
    if (typeof properties === 'object' && properties !== null) {
      for (const [key, child] of Object.entries(properties)) {
        if (!visit(child, [...path, key], reachable)) return false;
      }
    }
    for (const keyword of UNREACHABLE_KEYWORDS) {
      const sub = schema[keyword];
      if (sub === undefined) continue;
      const branches = Array.isArray(sub)
        ? sub
        : OBJECT_VALUED.has(keyword) && typeof sub === 'object' && sub !== null
          ? Object.values(sub)
          : [sub];
      for (const branch of branches) if (!visit(branch, [...path, keyword], false)) return false;
    }
    return true;
  };
  return visit(inputSchema, [], true) ? declarations : undefined;
}

/**
 * The -32020 error for the first declared argument whose `Mcp-Param-*` header is missing, not
 * decodable or not equal to it; undefined when they all match. `headers`: the request's
 * `mcp-param-*` headers, by lowercased name.
 */
export function paramHeaderMismatch(
  declarations: ParamHeaderDeclaration[],
  args: unknown,
  headers: Record<string, string>,
): (ErrorDetail & { data: unknown }) | undefined {
  for (const declaration of declarations) {
    const header = `Mcp-Param-${declaration.headerName}`;
    const value = valueAt(args, declaration.path);
    const body = asHeaderText(value);
    if (body === undefined) continue; // absent or null: no header expected
    const raw = headers[header.toLowerCase()];
    const mismatch = (detail: string) => ({
      code: MODERN_RPC_ERRORS.headerMismatch,
      message: `Header mismatch: ${detail}`,
      data: { mismatch: { header, body: truncate(body) } },
    });
    if (raw === undefined) {
      return mismatch(`the arguments carry ${declaration.path.join('.')} but ${header} is absent`);
    }
    const decoded = decodeHeaderValue(raw.trim());
    if (decoded === undefined) return mismatch(`${header} carries an invalid =?base64?...?= value`);
    const equal =
      (declaration.type === 'integer' || declaration.type === 'number') &&
      typeof value === 'number' &&
      DECIMAL.test(decoded)
        ? Number(decoded) === value
        : decoded === body;
    if (!equal) {
      return mismatch(
        `${header} is "${truncate(decoded)}" but the arguments carry ${declaration.path.join('.')}="${truncate(body)}"`,
      );
    }
  }
  return undefined;
}

/** An argument as its header text (string as is, integer in decimal, boolean lowercase). */
function asHeaderText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number' && Number.isFinite(value)) {
    return Number.isInteger(value) && !Number.isSafeInteger(value) ? undefined : String(value);
  }
  return undefined;
}

function valueAt(root: unknown, path: string[]): unknown {
  let node = root;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}
