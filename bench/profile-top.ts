/**
 * The top self-time entries of a V8 CPU profile (`node --cpu-prof`), as the
 * README's benchmark section lists them:
 *
 *   node --cpu-prof --cpu-prof-dir=DIR bin/ptscope.js dump --stat TRACE
 *   node dist/bench/profile-top.js DIR [N]
 *
 * DIR holds one .cpuprofile (the newest is read). Prints share of samples,
 * milliseconds and function with its file and line.
 */
import { statSync } from 'node:fs';
import { profileFiles, readProfile } from './cpu-profile.js';

function main(): void {
  const dir = process.argv[2];
  const count = Number(process.argv[3] ?? 12);
  if (!dir || !Number.isInteger(count) || count <= 0) {
    console.error('usage: node dist/bench/profile-top.js DIR [N]');
    process.exit(2);
  }
  const newest = profileFiles(dir, 'profile-top').sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]!;
  const profile = readProfile(newest);
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = nodes.get(profile.samples[i]!)!.callFrame;
    const where = frame.url ? ` ${frame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'}${where}`;
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, count)) {
    console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${key}`);
  }
}

main();
