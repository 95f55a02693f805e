/**
 * Text that makes a bench broadcast about a given size, built from words in a fixed
 * pseudo-random order: it compresses like prose or JSON text does, not like a run of one byte
 * (which would flatter gzip).
 */
const WORDS = (
  'project story feature actor status todo done in_progress title description backlog ' +
  'release sprint estimate owner review deploy gateway worker stream event progress result ' +
  'error retry timeout cancel resume history token team master readonly broadcast message'
).split(' ');

/** About `bytes` characters of words (the message's other fields add about 130 bytes). */
export function eventFiller(bytes: number): string {
  const target = Math.max(1, bytes - 130);
  let seed = 0x2545f491;
  let text = '';
  while (text.length < target) {
    // xorshift32: the same text every run, so runs compare.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    text += `${text ? ' ' : ''}${WORDS[(seed >>> 0) % WORDS.length]}`;
  }
  return text.slice(0, target);
}
