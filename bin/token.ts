/**
 * `npm run token -- --type team [--sub alice] [--ttl 1h | --no-expiry] [--tools a,b]`: prints an
 * HS256 JWT signed with JWT_SECRET. Tokens expire after DEFAULT_TTL unless --ttl says otherwise;
 * one that never expires must be asked for (--no-expiry).
 */
import { parseArgs } from 'node:util';
import { issueToken } from '../shared/auth';
import { TOKEN_TYPES, type TokenType } from '../shared/types';

export const DEFAULT_TTL = '24h';

function main(): void {
  const { values } = parseArgs({
    options: {
      type: { type: 'string' },
      sub: { type: 'string' },
      ttl: { type: 'string' },
      'no-expiry': { type: 'boolean' },
      tools: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const usage =
    `usage: npm run token -- --type ${TOKEN_TYPES.join('|')} [--sub ID] ` +
    `[--ttl 1h (default ${DEFAULT_TTL}) | --no-expiry] [--tools a,b]`;
  if (values.help) {
    console.log(usage);
    return;
  }
  const secret = process.env.JWT_SECRET;
  if (!secret) fail('JWT_SECRET is not set: tokens must be signed with the gateway secret');
  const type = values.type as TokenType | undefined;
  if (!type || !TOKEN_TYPES.includes(type)) fail(usage);
  if (values['no-expiry'] && values.ttl !== undefined)
    fail('--ttl and --no-expiry exclude each other');
  const ttlText = values['no-expiry'] ? undefined : (values.ttl ?? DEFAULT_TTL);
  const ttl = ttlText && /^\d+$/.test(ttlText) ? Number(ttlText) : ttlText;
  console.log(
    issueToken(secret, {
      type,
      sub: values.sub ?? `${type}-${Date.now().toString(36)}`,
      ...(ttl !== undefined ? { ttl } : {}),
      ...(values.tools ? { tools: values.tools.split(',').map((t) => t.trim()) } : {}),
    }),
  );
}

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

main();
