/**
 * How `npm run test-sse` prints: one short line per step, colored on a terminal; simulate_work's
 * progress as a live bar on a TTY (cli-progress) and as plain lines otherwise, so CI logs stay
 * readable line by line.
 */
import { SingleBar } from 'cli-progress';
import { createColors } from 'picocolors';

export interface Output {
  step(text: string): void;
  warn(text: string): void;
  ok(text: string): void;
  fail(text: string): void;
  /** One received event, printed as is (--raw). */
  event(name: string, id: string, data: string): void;
  progress(done: number, total: number, message: string): void;
  /** Ends a progress bar, if one is drawn, so the next line starts clean. */
  endProgress(): void;
}

export function createOutput(
  stream: NodeJS.WriteStream,
  errors: NodeJS.WriteStream,
  env: NodeJS.ProcessEnv,
): Output {
  const tty = stream.isTTY === true;
  // Colors only on a terminal, and never with NO_COLOR (https://no-color.org).
  const c = createColors(tty && !env.NO_COLOR);
  let bar: SingleBar | null = null;
  const write = (line: string, to = stream) => {
    // A bar being drawn is ended first: the line goes below it, a new bar below the line.
    bar?.stop();
    bar = null;
    to.write(`${line}\n`);
  };
  let lastPlain = -1;
  return {
    step: (text) => write(`${c.cyan('•')} ${text}`),
    warn: (text) => write(`${c.yellow('!')} ${text}`),
    ok: (text) => write(c.green(text)),
    fail: (text) => write(c.red(text), errors),
    event: (name, id, data) => write(`${c.dim('←')} ${c.bold(name)} ${c.dim(`[${id}]`)} ${data}`),
    progress: (done, total, message) => {
      if (!tty) {
        if (done !== lastPlain) stream.write(`  progress ${done}/${total} ${message}\n`);
        lastPlain = done;
        return;
      }
      if (!bar) {
        bar = new SingleBar({
          stream,
          format: `  ${c.cyan('{bar}')} {value}/{total} {message}`,
          barsize: 30,
          hideCursor: true,
          clearOnComplete: false,
        });
        bar.start(total, done, { message });
      } else {
        bar.setTotal(total);
        bar.update(done, { message });
      }
    },
    endProgress: () => {
      bar?.stop();
      bar = null;
      lastPlain = -1;
    },
  };
}
