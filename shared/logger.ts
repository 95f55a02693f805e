import winston from 'winston';

/** JSON lines on stdout; callers take child loggers with their context (role, podId, ...). */
export type Logger = winston.Logger;

/**
 * Characters of one logged field (the message included). Logged values may come from clients
 * (method names, paths, errors quoting input): a line never grows with what a client sends.
 */
export const LOG_FIELD_MAX_CHARS = 2048;

/**
 * Cuts every string field longer than LOG_FIELD_MAX_CHARS, and every object or array whose JSON
 * is, to that many characters, saying how long it was. Short fields pass untouched.
 */
export const boundLogFields = winston.format((info) => {
  const fields = info as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    const bounded = boundValue(fields[key]);
    if (bounded !== fields[key]) fields[key] = bounded;
  }
  return info;
});

function boundValue(value: unknown): unknown {
  if (typeof value === 'string') return cut(value);
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Error) {
    return { name: value.name, message: cut(value.message), stack: cut(value.stack ?? '') };
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined; // circular or BigInt: the transport's safe stringify copes, if small
  }
  if (json === undefined) return cut(String(value));
  return json.length > LOG_FIELD_MAX_CHARS ? cut(json) : value;
}

function cut(text: string): string {
  if (text.length <= LOG_FIELD_MAX_CHARS) return text;
  return `${text.slice(0, LOG_FIELD_MAX_CHARS)}… (truncated: ${text.length} characters)`;
}

/** The format of every logger: bounded fields, a timestamp, one JSON object per line. */
export function logFormat(): winston.Logform.Format {
  return winston.format.combine(
    boundLogFields(),
    winston.format.timestamp(),
    winston.format.json(),
  );
}

export function createLogger(level: string, defaultMeta: Record<string, unknown> = {}): Logger {
  return winston.createLogger({
    level,
    defaultMeta,
    format: logFormat(),
    transports: [new winston.transports.Console()],
  });
}

/** A logger that writes nothing, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
}
