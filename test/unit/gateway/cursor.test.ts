import {
  START_CURSOR,
  formatCursor,
  formatEventId,
  isAfter,
  parseCursor,
  parseEventId,
} from '../../../gateway/seed/cursor';
import { eventBody, idLine } from '../../../gateway/seed/frame';

describe('stream cursor', () => {
  it('formats and parses <connectionTopicId>_<tokenTypeTopicId>', () => {
    const cursor = { connection: '1732521600000-0', tokenType: '1732521600123-7' };
    expect(formatCursor(cursor)).toBe('1732521600000-0_1732521600123-7');
    expect(parseCursor('1732521600000-0_1732521600123-7')).toEqual(cursor);
    expect(formatCursor(START_CURSOR)).toBe('0-0_0-0');
  });

  it.each(['', '0-0', '0-0_', '_0-0', '0-0_0-0_0-0', 'a-0_0-0', '1_2', '0-0 _0-0', '0-0_0-0\n'])(
    'rejects %j as a cursor',
    (text) => {
      expect(parseCursor(text)).toBeUndefined();
    },
  );

  it('puts the connection id in front for the SSE id, and parses it back', () => {
    const connectionId = '3f1c2b9e-8d7a-4c1e-9f0a-1b2c3d4e5f60';
    const cursor = { connection: '5-1', tokenType: '9-0' };
    const id = formatEventId(connectionId, cursor);
    expect(id).toBe(`${connectionId}_5-1_9-0`);
    expect(parseEventId(id)).toEqual({ connectionId, cursor });
  });

  it.each([
    '5-1_9-0',
    'x_5-1',
    'bad id_5-1_9-0',
    '_5-1_9-0',
    `${'a'.repeat(65)}_0-0_0-0`,
    'c_1-1_x',
  ])('rejects %j as an event id', (text) => {
    expect(parseEventId(text)).toBeUndefined();
  });

  it('orders ids numerically, not as strings', () => {
    expect(isAfter('10-0', '9-0')).toBe(true);
    expect(isAfter('9-10', '9-9')).toBe(true);
    expect(isAfter('9-9', '9-9')).toBe(false);
    expect(isAfter('0-0', '0-1')).toBe(false);
  });

  it('answers repeated and alternating comparisons alike (the fan-out asks one pair many times)', () => {
    for (let i = 0; i < 3; i++) {
      expect(isAfter('5-1', '5-0')).toBe(true);
      expect(isAfter('5-1', '5-0')).toBe(true);
      expect(isAfter('5-1', '5-2')).toBe(false);
      expect(isAfter('5-0', '5-1')).toBe(false);
      expect(isAfter('5-1', '5-1')).toBe(false);
    }
  });
});

describe('SSE framing', () => {
  it('writes id, event and data lines ended by a blank line', () => {
    expect(idLine('c_1-0_0-0') + eventBody('tool-result', '{"a":1}')).toBe(
      'id: c_1-0_0-0\nevent: tool-result\ndata: {"a":1}\n\n',
    );
  });

  it('splits data with line breaks into several data lines', () => {
    expect(eventBody('x', 'a\nb\r\nc')).toBe('event: x\ndata: a\ndata: b\ndata: c\n\n');
  });

  it('never writes an unsafe event name', () => {
    expect(eventBody('bad\nname', '{}')).toBe('event: message\ndata: {}\n\n');
  });
});
