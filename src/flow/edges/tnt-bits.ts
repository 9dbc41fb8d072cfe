/**
 * The conditional-branch outcomes the edge decoder has read but not yet
 * used: the TNT bits of consecutive TNT packets, oldest first, as one bit
 * stream (libipt's query decoder holds one packet's bits at a time and
 * loads the next TNT packet when they run out, which gives the same
 * sequence while no other event comes between them).
 *
 * Bits are packed most significant first into 32-bit words, so reading the
 * next k (≤ 16) bits as a number — the edge cache's key — is a shift and a
 * mask. The buffer starts over whenever it runs empty and grows only if a
 * trace holds a very long run of TNT packets with nothing in between.
 */
export class TntBits {
  private words = new Uint32Array(64);
  /** Read and write positions, in bits. */
  private r = 0;
  private w = 0;

  /** Bits available. */
  get size(): number {
    return this.w - this.r;
  }

  clear(): void {
    this.r = 0;
    this.w = 0;
  }

  /** Append the `n` (≤ 32) low bits of `value`, the most significant (oldest) first. */
  append(value: number, n: number): void {
    if (this.r === this.w) this.r = this.w = 0;
    if (this.w + n > this.words.length * 32) this.makeRoom(n);
    const w = this.w;
    const word = w >>> 5;
    const off = w & 31;
    const free = 32 - off;
    const words = this.words;
    if (off === 0) words[word] = 0;
    if (n <= free) {
      words[word] |= (value << (free - n)) >>> 0;
    } else {
      const rest = n - free;
      words[word] |= value >>> rest;
      words[word + 1] = (value << (32 - rest)) >>> 0;
    }
    this.w = w + n;
  }

  /** Append a TNT packet's payload of `n` (≤ 47) bits given as a number. */
  appendPayload(bits: number, n: number): void {
    if (n <= 32) {
      this.append(bits >>> 0, n);
      return;
    }
    this.append(Math.floor(bits / 4294967296) >>> 0, n - 32);
    this.append(bits >>> 0, 32);
  }

  /** The next `k` (1..31, ≤ size) bits, oldest in the most significant place. */
  peek(k: number): number {
    const r = this.r;
    const word = r >>> 5;
    const off = r & 31;
    const words = this.words;
    if (off + k <= 32) return (words[word] << off) >>> (32 - k);
    const first = 32 - off;
    const second = k - first;
    return ((words[word] & ((1 << first) - 1)) << second) | (words[word + 1] >>> (32 - second));
  }

  /** Drop `n` bits. */
  skip(n: number): void {
    this.r += n;
  }

  /** Take the next bit (size must be > 0). */
  take(): number {
    const r = this.r++;
    return (this.words[r >>> 5] >>> (31 - (r & 31))) & 1;
  }

  private makeRoom(n: number): void {
    // Move the unread words to the front, then grow if that is not enough.
    const first = this.r >>> 5;
    const lastWord = (this.w + 31) >>> 5;
    let words = this.words;
    if (this.w - first * 32 + n > words.length * 32) {
      const bigger = new Uint32Array(Math.max(words.length * 2, ((this.w - first * 32 + n) >>> 5) + 2));
      bigger.set(words.subarray(first, lastWord));
      words = bigger;
    } else {
      words.copyWithin(0, first, lastWord);
    }
    this.words = words;
    this.r -= first * 32;
    this.w -= first * 32;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.words.byteLength;
  }
}
