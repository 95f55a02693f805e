/**
 * The benchmark's reply readers: a miscounted or misread reply would make `make bench` report
 * failed calls (or count failures as calls), so the SSE parsing and the reply matching are
 * checked here on the shapes both servers send.
 */
import { CallFailed, replyOf } from '../../../bench/mcpClient';
import { sseParser } from '../../../bench/sseStream';

function parseAll(chunks: string[]): Array<[string, string]> {
  const events: Array<[string, string]> = [];
  const feed = sseParser((event, data) => events.push([event, data]));
  for (const chunk of chunks) feed(chunk);
  return events;
}

describe('sseParser', () => {
  it('joins events split across chunks, with CRLF or LF line ends', () => {
    const body = 'event: tool-result\r\ndata: {"a":1}\r\n\r\nid: 7\ndata: line1\ndata: line2\n\n';
    expect(parseAll([body.slice(0, 9), body.slice(9, 30), body.slice(30)])).toEqual([
      ['tool-result', '{"a":1}'],
      ['message', 'line1\nline2'],
    ]);
  });

  it('passes a priming event (an id and empty data) as empty data, and skips comments', () => {
    expect(parseAll([': keep-alive\n\nid: s1_0\ndata: \n\nevent: x\ndata:y\n\n'])).toEqual([
      ['message', ''],
      ['x', 'y'],
    ]);
  });
});

describe('replyOf', () => {
  const sse = (body: string) => ({ headers: { 'content-type': 'text/event-stream' }, body });

  it('finds the reply with the request id in an SSE answer after a priming event', () => {
    const body =
      'id: s_0\ndata: \n\n' +
      'event: message\nid: s_1\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n' +
      'event: message\nid: s_2\ndata: {"jsonrpc":"2.0","id":3,"result":{"content":[]}}\n\n';
    expect(replyOf(sse(body), 3)).toEqual({ jsonrpc: '2.0', id: 3, result: { content: [] } });
  });

  it('reads a JSON body, a batch too, and a reply without the final blank line', () => {
    const json = { 'content-type': 'application/json; charset=utf-8' };
    const batch =
      '[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"x"}}]';
    expect(replyOf({ headers: json, body: batch }, 2).error).toEqual({ code: -1, message: 'x' });
    expect(replyOf(sse('data: {"jsonrpc":"2.0","id":5,"result":{}}\n'), 5).result).toEqual({});
  });

  it('fails when the answer holds no reply to the request', () => {
    expect(() => replyOf(sse('data: {"jsonrpc":"2.0","id":4,"result":{}}\n\n'), 9)).toThrow(
      CallFailed,
    );
    expect(() => replyOf({ headers: { 'content-type': 'text/html' }, body: 'hi' }, 1)).toThrow(
      CallFailed,
    );
  });
});
