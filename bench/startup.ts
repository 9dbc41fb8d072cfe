/**
 * What a process pays before and around its decode: node's own start, the
 * big packages' load (iced-x86 as CommonJS and as an ES module, zod), the
 * modules `flow` loads, and whole `flow --quiet --stat` runs (instruction
 * and block decoder) over the mruby trace once and 10 times, against
 * libipt's loops (bench/c/ptstat.c) on the same traces. A short trace, as a sandbox records per sample, is mostly
 * this fixed cost: the 1-copy and 10-copy runs give it as
 * t(1) - (t(10) - t(1)) / 9, the time that does not grow with the trace.
 *
 * Every figure is the median wall time of ROUNDS fresh processes (each
 * command's runs alternate with the others'), with the fastest beside it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { median, timedRun } from './process-timing.js';

export interface StartupMeasurement {
  label: string;
  mbps: number;
  unit: string;
  detail: string;
}

interface Command {
  label: string;
  cmd: string;
  args: string[];
}

/** A fresh process's wall time in ms; `cwd` is the repository, where `-e` scripts resolve packages. */
function wallMs(c: Command, cwd: string): number {
  return timedRun(c.cmd, c.args, { cwd, name: c.label }).seconds * 1000;
}

export function runStartupBench(root: string, real: string, ptstat: string | null, repeated: (copies: number) => string, rounds: number): StartupMeasurement[] {
  const node = process.execPath;
  const cli = join(root, 'bin', 'ptscope.js');
  const flowModule = join(root, 'dist', 'src', 'cli', 'flow.js');
  const commands: Command[] = [
    { label: 'node -e 0 (node itself)', cmd: node, args: ['-e', '0'] },
    { label: "require('iced-x86')", cmd: node, args: ['-e', "require('iced-x86')"] },
    { label: "import('iced-x86') (ES module of CommonJS)", cmd: node, args: ['--input-type=module', '-e', "await import('iced-x86')"] },
    { label: "import('zod')", cmd: node, args: ['--input-type=module', '-e', "await import('zod')"] },
    { label: 'import of dist/src/cli/flow.js (what flow loads)', cmd: node, args: ['--input-type=module', '-e', `await import(${JSON.stringify(flowModule)})`] },
  ];
  const dir = join(real, 'mruby');
  const haveTrace = existsSync(join(dir, 'trace.pt'));
  const raw = `${join(dir, 'seg_400000.bin')}:0x400000`;
  /** Per decoder, the runs over 1 and 10 copies: ptscope's and libipt's. */
  const runs: { decoder: string; ours: Command[]; theirs: Command[] }[] = [];
  if (haveTrace) {
    for (const decoder of ['insn', 'blk'] as const) {
      const entry = { decoder: decoder === 'insn' ? 'instruction decoder' : 'block decoder', ours: [] as Command[], theirs: [] as Command[] };
      for (const copies of [1, 10]) {
        const trace = repeated(copies);
        const flag = decoder === 'blk' ? ['--block-decoder'] : [];
        entry.ours.push({ label: `ptscope flow --quiet --stat ${flag.join('')}`.trimEnd() + `, mruby x${copies}`, cmd: node, args: [cli, 'flow', '--quiet', '--stat', ...flag, '--cpu', '6/158', '--raw', raw, '--pt', trace] });
        if (ptstat) entry.theirs.push({ label: `libipt 2.0.5, same loop (ptstat ${decoder}), mruby x${copies}`, cmd: ptstat, args: [decoder, '--cpu', '6/158', '--raw', raw, trace] });
      }
      commands.push(...entry.ours, ...entry.theirs);
      runs.push(entry);
    }
  } else {
    console.log('  (flow runs skipped: the shared real traces are not beside the repository)');
  }
  // One run of each first: the page cache, and build/bench's traces.
  for (const c of commands) wallMs(c, root);
  const times = new Map<Command, number[]>(commands.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) for (const c of commands) times.get(c)!.push(wallMs(c, root));
  const out: StartupMeasurement[] = commands.map((c) => {
    const t = times.get(c)!;
    return { label: c.label, mbps: median(t), unit: 'ms', detail: `fastest ${Math.min(...t).toFixed(0)} ms, ${t.length} runs` };
  });
  const split = ([one, ten]: Command[]): string => {
    const t1 = median(times.get(one!)!);
    const perCopy = (median(times.get(ten!)!) - t1) / 9;
    return `${(t1 - perCopy).toFixed(0)} ms fixed, ${perCopy.toFixed(0)} ms per copy of the trace`;
  };
  for (const r of runs) {
    console.log(`  ${r.decoder}: ptscope ${split(r.ours)}${r.theirs.length ? `; libipt ${split(r.theirs)}` : ''} (medians)`);
  }
  return out;
}
