/**
 * `ptscope coverage --edges`: the AFL edge coverage of a trace (see
 * src/flow/edges/edge-coverage.ts for what an edge is), as
 * - `afl`: the bitmap itself (map-size bytes of bucketed counts, what a
 *   fuzzer's trace_bits holds after a run; binary, needs -o);
 * - `showmap`: afl-showmap's `id:class` lines (default);
 * - `json`: totals, the bitmap's FNV-1a 64, every edge by block address
 *   with its exact count and id;
 * - `drcov`: a drcov log listing each block once per entry into it (see
 *   drcov-counts.ts; binary, needs -o).
 * Threads of one process are merged; several processes are refused.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TraceInput } from '../analyses/trace-input.js';
import { writeDrcovCounts } from '../flow/edges/drcov-counts.js';
import { blockGraphFor } from '../flow/edges/block-graph.js';
import { EdgeCoverage } from '../flow/edges/edge-coverage.js';
import { bitmapFnv1a64, EdgeCounts, isValidMapSize } from '../flow/edges/edge-map.js';
import { EdgePairs } from '../flow/edges/edge-pairs.js';
import { edgesJson } from '../flow/edges/edges-json.js';
import { formatShowmap } from '../flow/edges/showmap-format.js';
import { coverageModules } from '../reports/drcov.js';
import { CliError, type LineWriter } from './output.js';

export type EdgeFormat = 'afl' | 'showmap' | 'json' | 'drcov';

export interface EdgeCliOptions {
  format: EdgeFormat;
  output: string | null;
  mapSize: number;
}

/** Decode `inputs` (the streams of one recording) and write their edge coverage. */
export function runEdgeCoverage(source: string, inputs: readonly TraceInput[], o: EdgeCliOptions, out: LineWriter): number {
  if (!isValidMapSize(o.mapSize)) throw new CliError(`--map-size: a power of two from 256 to 16777216, got ${o.mapSize}.`);
  if ((o.format === 'afl' || o.format === 'drcov') && o.output === null) throw new CliError(`--format ${o.format} writes a binary file: give -o FILE.`);
  const spaces = new Set(inputs.map((ti) => ti.stream.mappings));
  if (spaces.size > 1) throw new CliError(`${source}: ${spaces.size} address spaces (processes): --edges decodes one.`);

  const pairs = new EdgePairs();
  const one = new EdgePairs();
  const fallbacks: string[] = [];
  let fast = 0;
  for (const ti of inputs) {
    const cov = new EdgeCoverage(ti.image, ti.config, { mapSize: o.mapSize });
    // Read through a window, not into memory: a trace of any size.
    const source = ti.stream.open();
    try {
      if (cov.count(source, one) === 'fast') fast++;
      else fallbacks.push(`${ti.name}: ${cov.lastBailReason}`);
    } finally {
      source.close();
    }
    pairs.merge(one);
  }
  const counts = new EdgeCounts(o.mapSize);
  pairs.countInto(counts);
  const bitmap = new Uint8Array(o.mapSize);
  counts.writeBitmap(bitmap);
  const how = fast === inputs.length ? 'fast path' : fallbacks.length === inputs.length ? `exact decoder (${fallbacks.join('; ')})` : `fast path and exact decoder (${fallbacks.join('; ')})`;
  const summary = `${pairs.total} edges taken, ${pairs.size} distinct, ${counts.used} map entries; decoded by the ${how}`;

  const write = (data: string | Uint8Array): string => {
    const path = resolve(o.output!);
    try {
      writeFileSync(path, data);
    } catch (e) {
      throw new CliError(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return path;
  };
  switch (o.format) {
    case 'afl':
      out.line(`${write(bitmap)}: AFL bitmap, ${o.mapSize} bytes, ${summary}`);
      return 0;
    case 'drcov': {
      const input = inputs[0]!;
      const graph = blockGraphFor(input.image);
      const blocks = [...pairs.blockCounts()].map(([start, count]) => ({ start, size: graph.sizeOf(graph.lookup(start)), count }));
      blocks.sort((a, b) => a.start - b.start);
      const originals = new Map(input.stream.mappings.map((m) => [m.file, m.originalPath]));
      const modules = coverageModules(input.modules, (m) => (m.path === null ? null : originals.get(m.path) ?? null));
      const d = writeDrcovCounts(blocks, modules);
      out.line(`${write(d.bytes)}: drcov with counts, ${blocks.length - d.outside} blocks, ${d.entries} entries; ${summary}`);
      if (d.outside > 0) out.line(`note: ${d.outside} blocks lie outside every module and are not in the log`);
      return 0;
    }
    case 'json': {
      const doc = edgesJson(pairs, counts, { source, streams: inputs.length, fast, fallbacks, bitmapFnv1a64: bitmapFnv1a64(bitmap) });
      const text = JSON.stringify(doc) + '\n';
      if (o.output === null) out.line(text.trimEnd());
      else out.line(`${write(text)}: edges JSON, ${summary}`);
      return 0;
    }
    default: {
      const text = formatShowmap(counts);
      if (o.output === null) {
        for (const l of text.split('\n')) if (l) out.line(l);
      } else {
        out.line(`${write(text)}: afl-showmap map, ${summary}`);
      }
      return 0;
    }
  }
}
