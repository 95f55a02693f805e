/**
 * Which partition of the command queue a token's commands go to (COMMAND_PARTITIONS): a hash
 * of its sub, the same in every process and release, so all of a token's commands and its
 * in-flight set stay in one partition (one hash slot on a Cluster).
 */
export function partitionOf(sub: string, partitions: number): number {
  if (partitions <= 1) return 0;
  return fnv1a(sub) % partitions;
}

/** Partition counts the Redis engine accepts: an integer from 1. */
export function validatePartitionCount(partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`commandPartitions must be an integer >= 1 (got ${partitions})`);
  }
}

/**
 * Each partition's share of the queue bound: with tokens spread by hash, the partitions
 * together hold at most partitions x ceil(maxQueued / partitions), under maxQueued + partitions.
 */
export function partitionBound(maxQueued: number, partitions: number): number {
  return maxQueued > 0 ? Math.ceil(maxQueued / partitions) : 0;
}

/** 32-bit FNV-1a of the UTF-8 bytes: small, fast, and spreads short ids well. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
