import { blockHash, type EdgeCounts } from './edge-map.js';

/**
 * Edges by their block addresses, with exact counts: the multiset the
 * exactness tests compare and the `json` and `drcov` outputs list. Kept
 * only when asked for (a fuzzer needs the bitmap alone).
 *
 * `from` is NaN for the first block after the start of the trace, an
 * overflow or a decode error (AFL's `prev_loc = 0`).
 */
export class EdgePairs {
  private readonly byFrom = new Map<number, Map<number, number>>();
  /** Edges counted, with repeats. */
  total = 0;

  add(from: number, to: number): void {
    let m = this.byFrom.get(from);
    if (m === undefined) {
      m = new Map();
      this.byFrom.set(from, m);
    }
    m.set(to, (m.get(to) ?? 0) + 1);
    this.total++;
  }

  clear(): void {
    this.byFrom.clear();
    this.total = 0;
  }

  /** Distinct edges. */
  get size(): number {
    let n = 0;
    for (const m of this.byFrom.values()) n += m.size;
    return n;
  }

  /** Every distinct edge, sorted by source then destination (NaN source first). */
  list(): { from: number; to: number; count: number }[] {
    const out: { from: number; to: number; count: number }[] = [];
    for (const [from, m] of this.byFrom) for (const [to, count] of m) out.push({ from, to, count });
    out.sort((a, b) => {
      const na = a.from !== a.from;
      const nb = b.from !== b.from;
      if (na !== nb) return na ? -1 : 1;
      if (!na && a.from !== b.from) return a.from - b.from;
      return a.to - b.to;
    });
    return out;
  }

  /** Executions of each destination block (the sum over its incoming edges). */
  blockCounts(): Map<number, number> {
    const out = new Map<number, number>();
    for (const m of this.byFrom.values()) for (const [to, c] of m) out.set(to, (out.get(to) ?? 0) + c);
    return out;
  }

  /** Add every edge of `other`. */
  merge(other: EdgePairs): void {
    for (const [from, m] of other.byFrom) {
      for (const [to, c] of m) {
        let mine = this.byFrom.get(from);
        if (mine === undefined) {
          mine = new Map();
          this.byFrom.set(from, mine);
        }
        mine.set(to, (mine.get(to) ?? 0) + c);
        this.total += c;
      }
    }
  }

  /** Count these edges into `counts` (AFL ids, as the decoders count them). */
  countInto(counts: EdgeCounts): void {
    const mask = counts.mask;
    for (const [from, m] of this.byFrom) {
      const prev = from !== from ? 0 : blockHash(from) & mask;
      for (const [to, c] of m) counts.add((prev >>> 1) ^ (blockHash(to) & mask), c);
    }
  }

  /** True if both hold the same edges with the same counts. */
  equals(other: EdgePairs): boolean {
    if (this.total !== other.total || this.byFrom.size !== other.byFrom.size) return false;
    for (const [from, m] of this.byFrom) {
      const o = other.byFrom.get(from);
      if (o === undefined || o.size !== m.size) return false;
      for (const [to, c] of m) if (o.get(to) !== c) return false;
    }
    return true;
  }
}
