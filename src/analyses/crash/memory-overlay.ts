/**
 * The memory contents at one point of a reverse-execution pass, as the
 * bytes the pass has learned or lost since it started: byte -> value, -1
 * for a byte known to be unknown. What the overlay does not hold comes from
 * elsewhere (the core, going backward) or is unknown.
 */
export class MemoryOverlay {
  private readonly bytes = new Map<number, number>();

  /** The byte at `a` as the pass left it: a value, -1 for unknown, undefined when the pass has not touched it. */
  get(a: number): number | undefined {
    return this.bytes.get(a);
  }

  set(a: number, v: number): void {
    this.bytes.set(a, v);
  }

  /** Nothing learned so far holds any more (a write that may have gone anywhere). */
  clear(): void {
    this.bytes.clear();
  }

  /** [a, a+n) held something unknown. */
  forget(a: number, n: number): void {
    for (let i = 0; i < n; i++) this.bytes.set(a + i, -1);
  }

  /** The little-endian value of `size` (1..8) bytes at `a`; `outside` gives the bytes the overlay does not hold. */
  read(a: number, size: number, outside: (a: number) => number): bigint | null {
    if (Number.isNaN(a) || size > 8 || size === 0) return null;
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) {
      const x = this.bytes.get(a + i) ?? outside(a + i);
      if (x < 0) return null;
      v = (v << 8n) | BigInt(x);
    }
    return v;
  }

  /** `size` bytes of `v` at `a`, little-endian; null (or a value wider than 8 bytes) makes them unknown. */
  store(a: number, size: number, v: bigint | null): void {
    if (Number.isNaN(a)) return;
    for (let i = 0; i < size; i++) this.bytes.set(a + i, v === null || size > 8 ? -1 : Number((v >> BigInt(i * 8)) & 0xffn));
  }
}
