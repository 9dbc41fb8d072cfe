/**
 * Edge coverage for fuzzers: the AFL edge bitmap of a trace, decoded at
 * fuzzing speed (the library API; `ptscope coverage --edges` is the CLI).
 *
 *     const cov = new EdgeCoverage(image, config);   // once per target
 *     const map = new Uint8Array(cov.mapSize);        // once; reused
 *     for (;;) {                                      // per execution
 *       cov.decode(trace, map);                       // no allocation
 *       ... compare map with the fuzzer's virgin map ...
 *     }
 *
 * ## What an edge is
 * The trace's instruction flow, as libipt's decoders give it, cut into
 * basic blocks: a block starts at the first instruction that runs after a
 * branch instruction (a near or far call, jump, conditional jump — taken or
 * not — or return), after an asynchronous branch (interrupt, signal),
 * after tracing is enabled, after an overflow, and at the start of the
 * trace. Entering block `cur` counts the edge `prev → cur`, `prev` being
 * the block entered before it; after the start of the trace, an overflow or
 * a decode error there is none (AFL's `prev_loc = 0`); tracing being
 * disabled and enabled again (a system call, leaving the IP filter) keeps
 * it. A block is entered only if its first instruction runs: where the
 * trace ends right after a branch, its destination is not counted. An
 * instruction that libipt decodes and then finds no trace for (a decode
 * error) ran, as ptxed shows it, but ends no block: where it went is unknown.
 * Edge ids and buckets: see edge-map.ts.
 *
 * ## How
 * The fast path (fast-edges.ts) reads the packets itself and walks a
 * precomputed block graph with a (block, next 16 TNT bits) cache, as
 * libxdc does. It handles what fuzzing traces contain; for anything else —
 * an unusual packet or event, a decode error, code that is not 64-bit — it
 * gives up before reporting anything and the trace is decoded by the
 * exact block decoder (exact-edges.ts), which defines the result: the two
 * agree edge for edge (test/edges-*.test.ts). Images whose sections are
 * tied to an address space, and tick or interrupt-flag events, always take
 * the exact path.
 */
import type { DecoderConfig } from '../../packets/config.js';
import { PacketStream } from '../../packets/packet-stream.js';
import type { TraceSource } from '../../packets/trace-source.js';
import type { Image } from '../image.js';
import { blockGraphFor, type BlockGraph } from './block-graph.js';
import { AFL_MAP_SIZE, EdgeCounts } from './edge-map.js';
import type { EdgePairs } from './edge-pairs.js';
import { exactEdges } from './exact-edges.js';
import { FastEdgeWalker } from './fast-edges.js';
import { scannerPacketOptions } from './trace-scanner.js';

export interface EdgeCoverageOptions {
  /** Bitmap size, a power of two (default AFL's 65536). */
  mapSize?: number;
  /** Always use the exact decoder (for comparisons). */
  exactOnly?: boolean;
  /** TNT bits per step-cache entry at most, 1..16 (default 16). */
  stepBits?: number;
  /** Bytes of a source's trace held at once (default: the packet stream's, 4 MiB). */
  streamWindow?: number;
}

/** How the last decode went. */
export type DecodePath = 'fast' | 'exact';

/** Cache and fallback counters since the decoder was made. */
export interface EdgeCoverageStats {
  decodes: number;
  /** Decodes the exact decoder made (the fast path gave up, or was not usable). */
  exact: number;
  /** Why the fast path gave up, and how often. */
  bailReasons: Record<string, number>;
  /** Step-cache lookups answered, and steps built. */
  cacheHits: number;
  cacheMisses: number;
  /** Times the step cache was dropped for space. */
  cacheGenerations: number;
  cacheEntries: number;
  graphBlocks: number;
  /** Bytes held by the block graph and the step cache. */
  memoryBytes: number;
  /** TNT bits and TIPs the fast path used. */
  bits: number;
  tips: number;
}

/** Why `image` and `config` need the exact path, or null if the fast path can be used. */
export function fastPathUnavailable(image: Image, config: DecoderConfig): string | null {
  if (config.flags.enableTickEvents) return 'tick events requested';
  if (config.flags.enableIflagsEvents) return 'interrupt-flag events requested';
  for (const m of image.sections()) if (!m.asid.isAny) return 'image sections tied to an address space';
  if (image.timeline !== null) return 'code rewritten during the recording (an image per part of the trace)';
  return null;
}

export class EdgeCoverage {
  readonly mapSize: number;
  /** Hit counts of the last decode (saturating at 255). */
  readonly counts: EdgeCounts;
  /** Why the fast path is not used at all, or null. */
  readonly unavailable: string | null;
  /** How the last decode went, and why the fast path gave up ('' if it did not). */
  lastPath: DecodePath = 'fast';
  lastBailReason = '';

  /** Counts of {@link decode}, made in the caller's bitmap. */
  private readonly mapCounts: EdgeCounts;
  private readonly graph: BlockGraph;
  private readonly walker: FastEdgeWalker | null;
  private decodes = 0;
  private exactDecodes = 0;
  private readonly bails = new Map<string, number>();
  private readonly streamWindow: number | undefined;

  constructor(
    readonly image: Image,
    readonly config: DecoderConfig,
    options: EdgeCoverageOptions = {},
  ) {
    this.mapSize = options.mapSize ?? AFL_MAP_SIZE;
    this.streamWindow = options.streamWindow;
    this.counts = new EdgeCounts(this.mapSize);
    this.mapCounts = new EdgeCounts(this.mapSize);
    this.graph = blockGraphFor(image);
    this.unavailable = options.exactOnly ? 'exact decoder requested' : fastPathUnavailable(image, config);
    this.walker = this.unavailable === null ? new FastEdgeWalker(config, this.graph, this.mapSize, options.stepBits) : null;
  }

  /**
   * Decode `trace` and write its AFL bitmap into `bitmap` (`mapSize` bytes,
   * overwritten: bucketed hit counts, 0 where no edge was hit), counting
   * straight into it as AFL counts into trace_bits. Returns the number of
   * edges taken; {@link lastIdsHit} says how many map entries are set.
   */
  decode(trace: Uint8Array, bitmap: Uint8Array): number {
    const counts = this.mapCounts;
    if (bitmap.length !== this.mapSize) throw new RangeError(`bitmap has ${bitmap.length} bytes, the edge map ${this.mapSize}`);
    bitmap.fill(0);
    counts.countInto(bitmap);
    this.run(trace, counts, null);
    counts.bucketInPlace();
    this.lastIdsHit = counts.used;
    const edges = counts.edges;
    counts.countInto(null);
    return edges;
  }

  /** Map entries the last {@link decode} set. */
  lastIdsHit = 0;

  /**
   * Decode `trace` into {@link counts} (hit counts per edge id) and,
   * if given, `pairs` (edges by block address). Returns how it was decoded.
   * A source (a trace file, a recording's stream) is read through a window
   * on both paths, so memory stays flat in the trace's size; where the
   * fast path gives up, the exact decoder reads the source again from its
   * start.
   */
  count(trace: Uint8Array | TraceSource, pairs: EdgePairs | null): DecodePath {
    this.counts.clear();
    return this.run(trace, this.counts, pairs);
  }

  private run(trace: Uint8Array | TraceSource, counts: EdgeCounts, pairs: EdgePairs | null): DecodePath {
    this.decodes++;
    pairs?.clear();
    const walker = this.walker;
    if (walker !== null) {
      const packets = trace instanceof Uint8Array ? trace : new PacketStream(trace, { ...scannerPacketOptions(this.config), windowSize: this.streamWindow });
      if (walker.run(packets, counts, pairs)) {
        this.lastPath = 'fast';
        this.lastBailReason = '';
        return 'fast';
      }
      this.lastBailReason = walker.bailReason;
      this.bails.set(walker.bailReason, (this.bails.get(walker.bailReason) ?? 0) + 1);
      counts.clear();
      pairs?.clear();
    } else {
      this.lastBailReason = this.unavailable!;
    }
    this.exactDecodes++;
    this.lastPath = 'exact';
    exactEdges(trace, this.config, this.image, counts, pairs);
    return 'exact';
  }

  /**
   * The fast path alone (for tests and benchmarks): true if it decoded the
   * trace into {@link counts}/`pairs`, false if it gave up
   * ({@link lastBailReason} says why) or is unavailable.
   */
  countFastOnly(trace: Uint8Array, pairs: EdgePairs | null): boolean {
    const counts = this.counts;
    counts.clear();
    pairs?.clear();
    const walker = this.walker;
    if (walker === null) {
      this.lastBailReason = this.unavailable!;
      return false;
    }
    const ok = walker.run(trace, counts, pairs);
    this.lastBailReason = ok ? '' : walker.bailReason;
    return ok;
  }

  get stats(): EdgeCoverageStats {
    const w = this.walker;
    const cache = w?.cache;
    return {
      decodes: this.decodes,
      exact: this.exactDecodes,
      bailReasons: Object.fromEntries(this.bails),
      cacheHits: cache?.hits ?? 0,
      cacheMisses: cache?.misses ?? 0,
      cacheGenerations: cache?.generations ?? 0,
      cacheEntries: cache?.size ?? 0,
      graphBlocks: this.graph.size,
      memoryBytes: this.graph.bytes + (cache?.bytes ?? 0) + (w?.scanner.bits.bytes ?? 0),
      bits: w?.bits ?? 0,
      tips: w?.tips ?? 0,
    };
  }
}
