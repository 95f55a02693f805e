/**
 * `npm run test-sse`: a Node client of the seed API that reads like a tool. One line per step
 * (connected, the tool names, each call's outcome, OK), `--raw` for every event, `--events` for
 * the gateway's per-client filter, simulate_work's progress as a bar on a TTY, and a dropped
 * stream shown as it resumes. Exit 0 when every step answered, 1 on failure, 2 on bad usage.
 */
import { createOutput } from './testSse/output';
import { parseOptions, UsageError, USAGE } from './testSse/options';
import { runSession } from './testSse/session';

async function main(): Promise<number> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`test-sse: FAILED: ${err.message}${err.exitCode === 2 ? `\n\n${USAGE}` : ''}`);
    return err.exitCode;
  }
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }
  const out = createOutput(process.stdout, process.stderr, process.env);
  try {
    await runSession(options, out);
    out.ok('OK');
    return 0;
  } catch (err) {
    out.fail(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
