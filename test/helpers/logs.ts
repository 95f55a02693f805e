import { Writable } from 'node:stream';
import winston from 'winston';
import { logFormat, type Logger } from '../../shared/logger';

export interface CapturedLogs {
  /** A JSON winston logger like the real one, writing into `lines`. */
  logger: Logger;
  /** Every line written, as text. */
  lines: string[];
  /** The lines, parsed. */
  records(): Record<string, unknown>[];
}

/** A logger whose JSON lines the test can read (for log fields, and that no token is logged). */
export function captureLogs(
  options: { level?: string; defaultMeta?: Record<string, unknown>; into?: string[] } = {},
): CapturedLogs {
  const lines = options.into ?? [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const logger = winston.createLogger({
    level: options.level ?? 'silly',
    defaultMeta: options.defaultMeta,
    format: logFormat(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, lines, records: () => lines.map((l) => JSON.parse(l)) };
}
