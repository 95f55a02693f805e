import { gzipSync } from 'node:zlib';
import { eventFiller } from '../../../bench/eventFiller';

test('eventFiller: text of about the asked size, the same every time, compressing like text', () => {
  const big = eventFiller(51_200);
  expect(big).toHaveLength(51_200 - 130);
  expect(eventFiller(51_200)).toBe(big);
  expect(eventFiller(200)).toHaveLength(70);
  expect(eventFiller(10)).toHaveLength(1);
  // Words from a small list compress well, but far from a run of one byte (~1,000×).
  const ratio = big.length / gzipSync(big).length;
  expect(ratio).toBeGreaterThan(2);
  expect(ratio).toBeLessThan(20);
});
