import type { Engine, EngineEvent } from './engine';

/** History is read this many events at a time. */
export const HISTORY_PAGE = 500;

/**
 * A topic's history after `afterId`, one page at a time in id order (for both engines: the
 * paging needs nothing of the engine but readHistory). `truncated` on a page: retention
 * dropped some of what came after `afterId`.
 */
export async function* historyPages(
  engine: Pick<Engine, 'readHistory'>,
  topic: string,
  afterId: string,
): AsyncGenerator<{ events: EngineEvent[]; truncated: boolean }> {
  let after = afterId;
  for (;;) {
    const page = await engine.readHistory(topic, after, HISTORY_PAGE);
    yield page;
    if (page.events.length < HISTORY_PAGE) return;
    after = page.events[page.events.length - 1].id;
  }
}
