/** HISTORY_MAX_BYTES and EVENT_MAX_BYTES: defaults, and the bounds an event size must keep. */
import { loadConfig } from '../../shared/config';

test('defaults: 4 MiB of history per topic, 1 MiB per event', () => {
  const config = loadConfig({});
  expect(config.historyMaxBytes).toBe(4 * 1024 * 1024);
  expect(config.eventMaxBytes).toBe(1024 * 1024);
});

test('an unset EVENT_MAX_BYTES is lowered to fit the history and half a send queue', () => {
  expect(loadConfig({ SEND_QUEUE_MAX_BYTES: '65536' }).eventMaxBytes).toBe(32768);
  expect(loadConfig({ HISTORY_MAX_BYTES: '20000' }).eventMaxBytes).toBe(20000);
});

test('an EVENT_MAX_BYTES set beyond those bounds is refused at start', () => {
  expect(() => loadConfig({ HISTORY_MAX_BYTES: '4096', EVENT_MAX_BYTES: '8192' })).toThrow(
    /EVENT_MAX_BYTES must be at most HISTORY_MAX_BYTES/,
  );
  expect(() => loadConfig({ SEND_QUEUE_MAX_BYTES: '65536', EVENT_MAX_BYTES: '40000' })).toThrow(
    /half of SEND_QUEUE_MAX_BYTES/,
  );
  expect(() => loadConfig({ EVENT_MAX_BYTES: '10' })).toThrow(/EVENT_MAX_BYTES/);
});
