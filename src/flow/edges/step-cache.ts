/**
 * The edge decoder's cache (libxdc's idea): for a block and the next k ≤ 16
 * TNT bits, where the flow goes and which blocks it enters on the way, so
 * that a warm decode crosses up to sixteen conditional branches, and the
 * direct jumps and calls between them, with one lookup.
 *
 * Key: (block id, k, the k bits), packed as `id * 2^17 + (1 << k | bits)`
 * (the leading 1 tells k apart; a double holds it exactly). A *step* from block P:
 * - a conditional branch takes the next bit (taken: its target, else the
 *   fall-through); right after the k-th bit the step stops at the branch's
 *   destination, so that an event due once the bits run out binds where
 *   libipt binds it;
 * - direct jumps and calls are followed (calls push their return address
 *   on the step's own stack);
 * - a return whose call was made in the same step takes a taken bit
 *   (compressed) and goes back to that call's return address; the walk
 *   stops before one that returns further up (its target is on the
 *   decoder's stack) or whose bit is not taken (an error);
 * - it stops at a block whose terminator needs the trace otherwise (an
 *   indirect or far branch), at an undecodable one, before a call 64 deep
 *   in the step, or after {@link MAX_STEP_BLOCKS} blocks (a direct-jump
 *   loop).
 *
 * An entry holds: the bits used, the block it stops at (F), whether it
 * left P at all, the blocks entered after P (in order), the edge ids
 * between consecutive ones (for this map size), the return addresses its
 * calls left on the stack and its deepest own stack depth (see
 * call-stack.ts), and the direct branches taken (the decoder's loop guard).
 * The first edge into the list depends on the block the flow came from, so
 * it is computed by the caller.
 *
 * Eviction: when the entries or their lists outgrow their budget, the
 * whole cache is dropped and refilled (a new generation); fuzzing runs
 * revisit the same code, so this is rare, and it is counted.
 */
import { BlockGraph, Term } from './block-graph.js';
import { CALL_STACK_DEPTH } from './call-stack.js';
import { grow } from '../grow.js';

/** Longest step, in blocks (bounds the entry size; a direct-jump loop stops here). */
export const MAX_STEP_BLOCKS = 256;
/** Bits per step at most (the default; {@link StepCache.stepBits}). */
export const STEP_BITS = 16;
/** Budget before the cache starts a new generation. */
const MAX_ENTRIES = 1 << 20;
const MAX_POOL = 1 << 24;
/** Keys hold k ≤ MAX_STEP_BITS bits. */
export const MAX_STEP_BITS = 16;
const KEY_SPAN = 1 << (MAX_STEP_BITS + 1);
const EMPTY = -1;

export class StepCache {
  // Entry fields.
  /** Bits used. */
  used = new Uint8Array(1024);
  /** 1 if the step executed P's terminator. */
  moved = new Uint8Array(1024);
  /** Block the step stops at. */
  stop = new Int32Array(1024);
  /** Start of the entered-block list in {@link pool}, and its length. */
  listAt = new Int32Array(1024);
  listLen = new Int32Array(1024);
  /** With a list: the last block's loc. */
  lastLoc = new Int32Array(1024);
  /** Start of the return addresses left pushed in {@link pushes}, and their count. */
  pushAt = new Int32Array(1024);
  pushLen = new Int32Array(1024);
  /** The step's deepest stack of its own return addresses. */
  peak = new Uint8Array(1024);
  /** Direct branches taken. */
  directs = new Int32Array(1024);
  /**
   * Per entry: the entered block ids, then as many edge ids: from P to the
   * first block, then between consecutive ones.
   */
  pool = new Int32Array(4096);
  pushes = new Float64Array(256);
  private entries = 0;
  private poolUsed = 0;
  private pushUsed = 0;

  private keys = new Float64Array(4096).fill(EMPTY);
  private vals = new Int32Array(4096);
  /** The slot hash of each key (for rehashing). */
  private hashes = new Int32Array(4096);

  hits = 0;
  misses = 0;
  /** The {@link BlockGraph.generation} the entries' block ids belong to. */
  graphGeneration = 0;
  /** Times the cache was dropped for space. */
  generations = 0;

  // Scratch for building an entry.
  private scratchIds = new Int32Array(MAX_STEP_BLOCKS + 1);
  private scratchPush = new Float64Array(MAX_STEP_BLOCKS + 1);

  constructor(
    readonly graph: BlockGraph,
    /** Map size - 1: the edge ids stored are for this map. */
    readonly mask: number,
    /** Bits per step at most (1..MAX_STEP_BITS). */
    readonly stepBits: number = STEP_BITS,
  ) {
    if (!(stepBits >= 1 && stepBits <= MAX_STEP_BITS)) throw new RangeError(`step bits must be 1..${MAX_STEP_BITS}`);
    this.graphGeneration = graph.generation;
  }

  get size(): number {
    return this.entries;
  }

  /** Entry ids are below this. */
  get capacity(): number {
    return this.used.length;
  }

  /** Bytes held by the cache's arrays. */
  get bytes(): number {
    return (
      this.used.byteLength + this.moved.byteLength + this.stop.byteLength + this.listAt.byteLength +
      this.listLen.byteLength + this.lastLoc.byteLength + this.pushAt.byteLength + this.pushLen.byteLength + this.directs.byteLength +
      this.pool.byteLength + this.pushes.byteLength + this.keys.byteLength + this.vals.byteLength + this.hashes.byteLength +
      this.scratchIds.byteLength + this.scratchPush.byteLength
    );
  }

  /** Called before the entries are dropped (the decoder settles what it deferred). */
  beforeClear: (() => void) | null = null;

  clear(): void {
    this.beforeClear?.();
    this.entries = 0;
    this.poolUsed = 0;
    this.pushUsed = 0;
    this.keys.fill(EMPTY);
  }

  /** The entry for a step from block `id` with the `k` bits `bits`. */
  get(id: number, k: number, bits: number): number {
    const low = (1 << k) | bits;
    const key = id * KEY_SPAN + low;
    const keys = this.keys;
    const mask = keys.length - 1;
    let slot = slotOf(id, low) & mask;
    for (;;) {
      const k2 = keys[slot];
      if (k2 === key) {
        this.hits++;
        return this.vals[slot];
      }
      if (k2 === EMPTY) break;
      slot = (slot + 1) & mask;
    }
    this.misses++;
    if (this.entries >= MAX_ENTRIES || this.poolUsed + 2 * MAX_STEP_BLOCKS > MAX_POOL) {
      this.clear();
      this.generations++;
    }
    return this.insert(key, slotOf(id, low), this.build(id, k, bits));
  }

  private insert(key: number, hash: number, e: number): number {
    if ((this.entries + 1) * 2 > this.keys.length) this.rehash(this.keys.length * 2);
    const keys = this.keys;
    const mask = keys.length - 1;
    let slot = hash & mask;
    while (keys[slot] !== EMPTY) slot = (slot + 1) & mask;
    keys[slot] = key;
    this.vals[slot] = e;
    this.hashes[slot] = hash;
    return e;
  }

  private rehash(capacity: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const oldHashes = this.hashes;
    this.keys = new Float64Array(capacity).fill(EMPTY);
    this.vals = new Int32Array(capacity);
    this.hashes = new Int32Array(capacity);
    const mask = capacity - 1;
    for (let i = 0; i < oldKeys.length; i++) {
      if (oldKeys[i] === EMPTY) continue;
      let slot = oldHashes[i] & mask;
      while (this.keys[slot] !== EMPTY) slot = (slot + 1) & mask;
      this.keys[slot] = oldKeys[i];
      this.vals[slot] = oldVals[i];
      this.hashes[slot] = oldHashes[i];
    }
  }

  /** Walk the step and store it as a new entry. */
  private build(p: number, k: number, bits: number): number {
    const g = this.graph;
    const ids = this.scratchIds;
    const push = this.scratchPush;
    let n = 0;
    let np = 0;
    let peak = 0;
    let used = 0;
    let moved = 0;
    let directs = 0;
    let id = p;
    for (let blocks = 0; blocks < MAX_STEP_BLOCKS; blocks++) {
      const t = g.term[id] as Term;
      let next: number;
      if (t === Term.Cond) {
        if (used === k) break;
        const bit = (bits >>> (k - 1 - used)) & 1;
        used++;
        next = bit !== 0 ? g.targetOf(id) : g.nextOf(id);
      } else if (t === Term.Jump || t === Term.CallNext) {
        next = g.targetOf(id);
        directs++;
      } else if (t === Term.Call) {
        if (np === CALL_STACK_DEPTH) break;
        push[np++] = g.next[id];
        if (np > peak) peak = np;
        next = g.targetOf(id);
        directs++;
      } else if (t === Term.Ret) {
        // A compressed return to a call of this step.
        if (used === k || np === 0 || ((bits >>> (k - 1 - used)) & 1) === 0) break;
        used++;
        next = g.lookup(push[--np]);
      } else {
        break;
      }
      // Block `id` ran to its end.
      if (moved === 0) moved = 1;
      else ids[n++] = id;
      id = next;
      if (used === k && k !== 0 && (t === Term.Cond || t === Term.Ret)) break;
    }
    const e = this.alloc();
    this.used[e] = used;
    this.moved[e] = moved;
    this.stop[e] = id;
    this.directs[e] = directs;
    if (this.poolUsed + 2 * n > this.pool.length) this.pool = grow(this.pool, new Int32Array(Math.max(this.pool.length * 2, this.poolUsed + 2 * n)));
    const pool = this.pool;
    const at = this.poolUsed;
    this.listAt[e] = at;
    this.listLen[e] = n;
    const mask = this.mask;
    for (let i = 0; i < n; i++) pool[at + i] = ids[i];
    if (n > 0) this.lastLoc[e] = g.hash[ids[n - 1]] & mask;
    for (let i = 0; i < n; i++) {
      const prev = g.hash[i === 0 ? p : ids[i - 1]] & mask;
      const cur = g.hash[ids[i]] & mask;
      pool[at + n + i] = (prev >>> 1) ^ cur;
    }
    this.poolUsed = at + 2 * n;
    if (this.pushUsed + np > this.pushes.length) this.pushes = grow(this.pushes, new Float64Array(Math.max(this.pushes.length * 2, this.pushUsed + np)));
    this.pushAt[e] = this.pushUsed;
    this.pushLen[e] = np;
    this.peak[e] = peak;
    for (let i = 0; i < np; i++) this.pushes[this.pushUsed + i] = push[i];
    this.pushUsed += np;
    return e;
  }

  private alloc(): number {
    const e = this.entries++;
    if (e === this.used.length) {
      const n = e * 2;
      this.used = grow(this.used, new Uint8Array(n));
      this.moved = grow(this.moved, new Uint8Array(n));
      this.stop = grow(this.stop, new Int32Array(n));
      this.listAt = grow(this.listAt, new Int32Array(n));
      this.listLen = grow(this.listLen, new Int32Array(n));
      this.lastLoc = grow(this.lastLoc, new Int32Array(n));
      this.pushAt = grow(this.pushAt, new Int32Array(n));
      this.pushLen = grow(this.pushLen, new Int32Array(n));
      this.peak = grow(this.peak, new Uint8Array(n));
      this.directs = grow(this.directs, new Int32Array(n));
    }
    return e;
  }
}

/** The table slot hash of a key's two parts. */
function slotOf(id: number, low: number): number {
  const h = Math.imul(id ^ Math.imul(low, 0x85ebca6b), 0x9e3779b1);
  return h ^ (h >>> 15);
}

