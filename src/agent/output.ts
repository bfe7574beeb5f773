// Bounded views of tool output: a head and a tail kept while streaming, so a 10 MB (or endless)
// output costs the agent a few KiB of memory and the model at most MAX_MODEL_OUTPUT_BYTES.

/** The most bytes of one tool's output that ever reach the model (CONTRACT §8: 10 KiB). */
export const MAX_MODEL_OUTPUT_BYTES = 10 * 1024;

/** Keeps the first and last `half` bytes of a byte stream and counts the rest. */
export class HeadTailBuffer {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer = Buffer.alloc(0);
  private total = 0;

  constructor(private readonly half: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    let rest = chunk;
    if (this.headBytes < this.half) {
      const take = Math.min(this.half - this.headBytes, rest.length);
      this.head.push(rest.subarray(0, take));
      this.headBytes += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0) return;
    // Only the last `half` bytes matter; concatenating bounded slices keeps memory at O(half).
    const joined = Buffer.concat([
      this.tail,
      rest.length > this.half ? rest.subarray(rest.length - this.half) : rest,
    ]);
    this.tail = joined.length > this.half ? Buffer.from(joined.subarray(joined.length - this.half)) : joined;
  }

  get totalBytes(): number {
    return this.total;
  }

  /** Head + marker + tail, at most 2×half bytes of content plus the marker line. */
  render(): string {
    const head = Buffer.concat(this.head);
    const omitted = this.total - head.length - this.tail.length;
    if (omitted <= 0) return Buffer.concat([head, this.tail]).toString("utf8");
    return `${head.toString("utf8")}\n[… ${omitted} bytes left out …]\n${this.tail.toString("utf8")}`;
  }

  /** The last `n` bytes seen (for event tails). */
  lastBytes(n: number): string {
    const source = this.total <= this.half * 2 ? Buffer.concat([...this.head, this.tail]) : this.tail;
    return source.subarray(Math.max(0, source.length - n)).toString("utf8");
  }
}
