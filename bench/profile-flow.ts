/**
 * Decode the real mruby trace again and again with one flow decoder, for a
 * CPU profile of the decoder alone (no process start-up, no printing):
 *
 *   node --cpu-prof --cpu-prof-dir=DIR dist/bench/profile-flow.js insn|block [PASSES] [--warm]
 *   node dist/bench/profile-top.js DIR
 *
 * Each pass starts with a new image (cold caches), as the `flow` benchmark's;
 * with --warm every pass decodes from one image, whose caches the first
 * pass fills. PTSCOPE_PASS_TIMES=1 prints each pass's time.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { countInstructions, rawImage } from './flow-count.js';

const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

const kind = process.argv.slice(2).filter((a) => a !== '--warm')[0];
const warm = process.argv.includes('--warm');
const args = process.argv.slice(2).filter((a) => a !== '--warm');
const passes = Number(args[1] ?? 20);
if ((kind !== 'insn' && kind !== 'block') || !Number.isInteger(passes) || passes <= 0 || passes > 10_000) {
  console.error('usage: node dist/bench/profile-flow.js insn|block [PASSES] [--warm]');
  process.exit(2);
}
const dir = join(ROOT, '..', 'shared', 'traces', 'real', 'mruby');
const trace = new Uint8Array(readFileSync(join(dir, 'trace.pt')));
const images = [{ file: join(dir, 'seg_400000.bin'), address: 0x400000 }];
const shared = warm ? rawImage(images) : null;
const t0 = performance.now();
let insn = 0;
let fastest = Infinity;
for (let i = 0; i < passes; i++) {
  // CPU time, not wall time: on a shared machine it is the steadier measure.
  const c0 = process.cpuUsage();
  insn += countInstructions(kind, trace, shared ?? images, '6/158').insn;
  const c = process.cpuUsage(c0);
  const ms = (c.user + c.system) / 1000;
  fastest = Math.min(fastest, ms);
  if (process.env.PTSCOPE_PASS_TIMES) console.log(`pass ${i}: ${ms.toFixed(1)} ms`);
}
const seconds = (performance.now() - t0) / 1000;
console.log(`${kind}: ${passes} passes, ${(insn / seconds / 1e6).toFixed(1)} M insn/s, fastest pass ${fastest.toFixed(1)} ms of CPU`);
