/**
 * A timeline of one run's threads from their V8 CPU profiles (`node
 * --cpu-prof` writes one per thread, the main thread's and each worker's):
 *
 *   node --cpu-prof --cpu-prof-dir=DIR bin/ptscope.js analyze TRACE ... --jobs 2
 *   node dist/bench/profile-threads.js DIR [FUNCTION ...]
 *
 * For each thread: when its profile starts and ends, in seconds from the
 * first thread's start, and how long it was busy (samples that are neither
 * idle nor a pool worker waiting for a task); for each FUNCTION named, the
 * first and last sample whose stack holds it. Times come from samples, so
 * they are as fine as the sampling interval, and include the profiler's cost.
 */
import { basename } from 'node:path';
import { profileFiles, readProfile } from './cpu-profile.js';

/** Frames that are a thread waiting, not working (piscina's workers wait for tasks in atomicsWaitLoop). */
const WAITING = new Set(['(idle)', 'atomicsWaitLoop']);

function main(): void {
  const [dir, ...watched] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node dist/bench/profile-threads.js DIR [FUNCTION ...]');
    process.exit(2);
  }
  const files = profileFiles(dir, 'profile-threads').sort();
  const profiles = files.map(readProfile);
  const t0 = Math.min(...profiles.map((p) => p.startTime));
  const s = (us: number): string => ((us - t0) / 1e6).toFixed(2);
  profiles.forEach((p, i) => {
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const holds = (id: number, name: string): boolean => {
      for (let q: number | undefined = id; q !== undefined; q = parent.get(q)) if (nodes.get(q)!.callFrame.functionName === name) return true;
      return false;
    };
    const spans = new Map<string, [number, number]>();
    let t = p.startTime;
    let busy = 0;
    for (let k = 0; k < p.samples.length; k++) {
      t += p.timeDeltas[k] ?? 0;
      const id = p.samples[k]!;
      if (!WAITING.has(nodes.get(id)!.callFrame.functionName)) busy += p.timeDeltas[k] ?? 0;
      for (const w of watched) {
        if (!holds(id, w)) continue;
        const span = spans.get(w);
        if (span === undefined) spans.set(w, [t, t]);
        else span[1] = t;
      }
    }
    console.log(`${basename(files[i]!)}: ${s(p.startTime)} to ${s(p.endTime)} s, busy ${(busy / 1e6).toFixed(2)} s`);
    for (const w of watched) {
      const span = spans.get(w);
      if (span !== undefined) console.log(`  ${w}: ${s(span[0])} to ${s(span[1])} s`);
    }
  });
}

main();
