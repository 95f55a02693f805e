/**
 * The load generators' counting (bench/deliveryCounter.ts) on the two framings `make bench`
 * reads: the project's SSE events and nchan's EventSource output (as nchan 1.3 sends it:
 * a `: hi` comment first, `id: <time>:<n>`, no `event:` line).
 */
import { DeliveryCounter, tally, type CountedStream } from '../../../bench/deliveryCounter';

const stream = (broadcasts: number): CountedStream => ({
  carry: '',
  welcomed: false,
  got: new Uint8Array(broadcasts),
});

const message = (type: string, seq: number, sentAt: number) =>
  JSON.stringify({ type, seq, sentAt, result: { message: 'm', level: 'warning' } });

const nchanFrame = (id: string, data: string) => `id: ${id}\ndata: ${data}\n\n`;
const projectFrame = (id: string, event: string, data: string) =>
  `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`;

describe('DeliveryCounter', () => {
  test("nchan's framing: open at ': hi', every broadcast counted by its data line", () => {
    const counter = new DeliveryCounter();
    const s = stream(3);
    expect(counter.onChunk(s, ': hi\n\n', 1000)).toBe(true);
    const wire =
      nchanFrame('1796035902:0', message('bench-warm', 0, 990)) +
      nchanFrame('1796035902:1', message('bench', 0, 995)) +
      nchanFrame('1796035902:2', message('bench', 1, 990)) +
      nchanFrame('1796035902:3', message('bench', 2, 980));
    expect(counter.onChunk(s, wire, 1000)).toBe(false);
    expect(counter.warm).toBe(1);
    expect(counter.deliveries).toBe(3);
    expect(counter.benchEvents).toBe(0);
    expect(counter.otherEvents).toBe(0);
    expect(counter.latency.summary().maxMs).toBe(20);
    expect(counter.lastArrival).toBe(1000);
    expect(tally([s])).toEqual({ missing: 0, duplicates: 0 });
  });

  test("the project's framing: open at the welcome event, named events counted", () => {
    const counter = new DeliveryCounter();
    const s = stream(2);
    const welcome = projectFrame('c_0-0_0-0', 'mcp-notification', '{"connectionId":"c"}');
    expect(counter.onChunk(s, welcome, 0)).toBe(true);
    counter.onChunk(s, projectFrame('c_1-0_0-0', 'bench', message('bench', 0, 0)), 5);
    counter.onChunk(s, projectFrame('c_2-0_0-0', 'bench', message('bench', 1, 0)), 5);
    expect(counter.deliveries).toBe(2);
    expect(counter.benchEvents).toBe(2);
    expect(counter.otherEvents).toBe(1);
    expect(tally([s])).toEqual({ missing: 0, duplicates: 0 });
  });

  test('lines split across chunks, lost and duplicated broadcasts', () => {
    const counter = new DeliveryCounter();
    const s = stream(3);
    const wire =
      ': hi\n\n' +
      nchanFrame('1:0', message('bench', 0, 0)) +
      nchanFrame('1:1', message('bench', 0, 0)) +
      nchanFrame('1:2', message('bench', 2, 0));
    // Byte by byte: nothing is counted twice or missed at a chunk boundary.
    let opened = 0;
    for (const ch of wire) if (counter.onChunk(s, ch, 1)) opened++;
    expect(opened).toBe(1);
    expect(counter.deliveries).toBe(3);
    // seq 0 twice, seq 1 never.
    expect(tally([s])).toEqual({ missing: 1, duplicates: 1 });
  });

  test('a stream that never opened is not counted as missing anything', () => {
    expect(tally([stream(5)])).toEqual({ missing: 0, duplicates: 0 });
  });
});
