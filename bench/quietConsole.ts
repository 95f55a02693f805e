/**
 * Preloaded (`node -r dist/bench/quietConsole.js <sdk example server>`) into the MCP SDK's
 * reference server only: its example logs a line per request with console.log, which the
 * project's processes (LOG_LEVEL warn) do not, so both sides are measured without per-call
 * logging. Its warnings and errors (console.warn, console.error) still reach stderr.
 */
console.log = () => undefined;
console.info = () => undefined;

export {};
