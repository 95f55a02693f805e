/**
 * Preloaded (`node --expose-gc -r dist/bench/gcOnSignal.js dist/bin/gateway.js`) into the gateway
 * under test, and nothing else: SIGUSR2 runs a full garbage collection, so the benchmark can read
 * the resident memory of what is retained rather than of garbage not yet collected. The gateway's
 * own code is unchanged.
 */
const collect = (globalThis as { gc?: () => void }).gc;
if (collect) process.on('SIGUSR2', () => collect());

export {};
