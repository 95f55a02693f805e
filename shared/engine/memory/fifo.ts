/**
 * An array-backed queue with O(1) amortized shift and indexed reads, so capped histories and
 * command queues never pay Array.prototype.shift's copy on every removal.
 */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 32 && this.head * 2 >= this.items.length) {
      // Compact once the dead prefix is at least half the array: amortized O(1) per shift.
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** The item at position `index` from the front (0 = oldest). */
  at(index: number): T {
    return this.items[this.head + index] as T;
  }
}
