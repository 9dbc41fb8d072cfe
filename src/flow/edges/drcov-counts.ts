/**
 * A drcov log (DynamoRIO's drcov version 2, module table version 2) of the
 * blocks an edge decode entered, with their counts: each block appears in
 * the BB table once per entry into it, up to {@link DRCOV_MAX_REPEAT}
 * times, so readers that count repeated entries (Lighthouse's hit map)
 * show how often each block ran; readers that do not still see which ran.
 * A block is [its start, the end of its terminator) as the edge decoder's
 * block graph has it; blocks outside every module are left out.
 */

/** Repeats of one block at most (bounds the file: a hot loop would add millions). */
export const DRCOV_MAX_REPEAT = 0xffff;

/** A module of the table (src/reports/drcov.ts's CoverageModule has these fields). */
export interface DrcovModule {
  id: number;
  path: string;
  base: number;
  end: number;
  entry: number;
}

/** A block entered `count` times. */
export interface CountedBlock {
  start: number;
  size: number;
  count: number;
}

export function writeDrcovCounts(blocks: readonly CountedBlock[], modules: readonly DrcovModule[]): { bytes: Uint8Array; entries: number; outside: number } {
  const hex16 = (v: number): string => '0x' + BigInt.asUintN(64, BigInt(v)).toString(16).padStart(16, '0');
  const lines = ['DRCOV VERSION: 2', 'DRCOV FLAVOR: drcov-64', `Module Table: version 2, count ${modules.length}`, 'Columns: id, base, end, entry, path'];
  for (const m of modules) lines.push(`${String(m.id).padStart(3)}, ${hex16(m.base)}, ${hex16(m.end)}, ${hex16(m.entry)}, ${m.path.replace(/[\r\n]/g, '?')}`);
  const entries: number[] = [];
  let outside = 0;
  for (const b of blocks) {
    const m = modules.find((x) => b.start >= x.base && b.start < x.end);
    if (m === undefined || b.start - m.base > 0xffffffff) {
      outside++;
      continue;
    }
    const size = Math.min(0xffff, Math.max(1, b.size));
    const repeat = Math.min(b.count, DRCOV_MAX_REPEAT);
    for (let i = 0; i < repeat; i++) entries.push(b.start - m.base, size, m.id);
  }
  const count = entries.length / 3;
  lines.push(`BB Table: ${count} bbs`);
  const head = Buffer.from(lines.join('\n') + '\n', 'utf8');
  const out = new Uint8Array(head.length + count * 8);
  out.set(head, 0);
  const view = new DataView(out.buffer, out.byteOffset + head.length, count * 8);
  for (let i = 0; i < count; i++) {
    view.setUint32(i * 8, entries[i * 3], true);
    view.setUint16(i * 8 + 4, entries[i * 3 + 1], true);
    view.setUint16(i * 8 + 6, entries[i * 3 + 2], true);
  }
  return { bytes: out, entries: count, outside };
}
