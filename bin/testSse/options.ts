/**
 * What `npm run test-sse` was asked to do: flags from argv, the server and token from the
 * environment. Parsed once; a bad flag is a usage error (exit 2) before anything connects.
 */
export interface TestSseOptions {
  serverUrl: string;
  token: string;
  /** Print every event as it arrives, not one line per step. */
  raw: boolean;
  /** `?events=` on the stream URL (the gateway's per-client filter); null for every event. */
  events: string[] | null;
  /** simulate_work's steps and time per step (the server allows 1-20 and 0-2000 ms). */
  workSteps: number;
  workDelayMs: number;
  timeoutMs: number;
}

export const USAGE = `Usage: npm run test-sse -- [--raw] [--events a,b] [--steps N] [--step-ms MS]

Connects to SERVER_URL/mcp/sse with MCP_AUTH_TOKEN, lists the tools, calls list_projects and
simulate_work (with its progress), and prints one line per step, then OK (exit 0). A dropped
stream is resumed with Last-Event-ID. Exit 1 on any failure or after TEST_SSE_TIMEOUT_MS.

  --raw          print every event as it arrives (name, id, data)
  --events a,b   receive only these event types (GET /mcp/sse?events=a,b)
  --steps N      simulate_work steps, 1-20 (default 5)
  --step-ms MS   simulate_work time per step, 0-2000 ms (default 200)
  --help         this text`;

/** A bad flag exits 2; a missing setting (the token) exits 1, like any other failure. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

function intFlag(name: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${name} needs an integer from ${min} to ${max} (got ${value ?? 'nothing'})`,
    );
  }
  return n;
}

/** Parses argv (without node and the script); throws UsageError on anything unknown. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): TestSseOptions | 'help' {
  const options = {
    serverUrl: (env.SERVER_URL ?? 'http://localhost:3000').replace(/\/$/, ''),
    token: env.MCP_AUTH_TOKEN ?? '',
    raw: false,
    events: null as string[] | null,
    workSteps: 5,
    workDelayMs: 200,
    timeoutMs: intFlag('TEST_SSE_TIMEOUT_MS', env.TEST_SSE_TIMEOUT_MS ?? '15000', 1, 3_600_000),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--help':
      case '-h':
        return 'help';
      case '--raw':
        options.raw = true;
        break;
      case '--events': {
        const names = (value() ?? '')
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean);
        if (names.length === 0) throw new UsageError('--events needs a comma-separated list');
        options.events = names;
        break;
      }
      case '--steps':
        options.workSteps = intFlag('--steps', value(), 1, 20);
        break;
      case '--step-ms':
        options.workDelayMs = intFlag('--step-ms', value(), 0, 2000);
        break;
      default:
        throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (!options.token) {
    throw new UsageError(
      'MCP_AUTH_TOKEN is not set (npm start prints tokens when JWT_SECRET is unset)',
      1,
    );
  }
  return options;
}
