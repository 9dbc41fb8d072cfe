/**
 * afl-showmap's text output for an edge map: one `id:class` line per edge
 * id hit, in id order, the id as six decimal digits and the class as
 * afl-showmap prints it (1..8, count_class_human; see edge-map.ts).
 */
import { showmapClass, type EdgeCounts } from './edge-map.js';

export function formatShowmap(counts: EdgeCounts): string {
  const ids = Array.from(counts.touched.subarray(0, counts.used)).sort((a, b) => a - b);
  let text = '';
  for (const id of ids) text += `${String(id).padStart(6, '0')}:${showmapClass(counts.counts[id])}\n`;
  return text;
}
