/**
 * The JSON document of an edge decode (`ptscope coverage --edges --format
 * json`): totals, the bitmap's fingerprint, how it was decoded, and every
 * edge by block address with its exact count and AFL id. Addresses are
 * hex strings (64-bit values do not fit JSON numbers); `from` is null for
 * the first block after the start, an overflow or a decode error.
 */
import { formatIpShort } from '../address-space.js';
import { blockHash, type EdgeCounts } from './edge-map.js';
import type { EdgePairs } from './edge-pairs.js';

export interface EdgesJsonMeta {
  source: string;
  /** Trace streams decoded, and how many the fast path did alone. */
  streams: number;
  fast: number;
  /** Why the fast path left streams to the exact decoder. */
  fallbacks: string[];
  bitmapFnv1a64: string;
}

export function edgesJson(pairs: EdgePairs, counts: EdgeCounts, meta: EdgesJsonMeta): object {
  const mask = counts.mask;
  const hex = (ip: number): string => '0x' + formatIpShort(ip);
  return {
    format: 'ptscope-edges',
    version: 1,
    source: meta.source,
    mapSize: counts.size,
    streams: meta.streams,
    fastPath: meta.fast,
    fallbacks: meta.fallbacks,
    edgesTaken: pairs.total,
    distinctEdges: pairs.size,
    idsHit: counts.used,
    bitmapFnv1a64: meta.bitmapFnv1a64,
    edges: pairs.list().map((e) => ({
      from: e.from !== e.from ? null : hex(e.from),
      to: hex(e.to),
      count: e.count,
      id: ((e.from !== e.from ? 0 : blockHash(e.from) & mask) >>> 1) ^ (blockHash(e.to) & mask),
    })),
  };
}
