/** The ids of one page, in id order, after `afterId`; shared by both engines' stores. */
export function pageOfIds(
  allIds: string[],
  afterId: string | undefined,
  limit: number,
): { ids: string[]; more: boolean } {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`limit must be a positive integer, got ${limit}`);
  }
  const sorted = allIds.sort();
  let start = 0;
  if (afterId !== undefined) {
    // First id greater than afterId (binary search: the collection may be large).
    let high = sorted.length;
    while (start < high) {
      const middle = (start + high) >>> 1;
      if (sorted[middle] <= afterId) start = middle + 1;
      else high = middle;
    }
  }
  const ids = sorted.slice(start, start + limit);
  return { ids, more: start + limit < sorted.length };
}
