/**
 * ptscope against libipt's own test suite, beyond the cases the shared
 * vectors hold: every `.ptt` of a libipt checkout's `test/src` folder is
 * compiled by libipt's pttc, run through the vectors' libipt ptdump and
 * ptxed (the expectation, as ptt-vectors.ts makes it) and through ptscope's
 * `dump` and `flow` (both decoders), and the outputs are compared line by
 * line (blank runs equal, as `diff -ub`).
 *
 *   node dist/tools/conformance/upstream-ptt.js DIR [--all] [--keep OUT] [NAME...]
 *
 * DIR holds the .ptt files (libipt's test/src). Cases whose name the shared
 * vectors already have are left out unless --all. --keep writes each case's
 * files and ptscope's differing output (`KIND.actual`) under OUT. The .ptt
 * files are libipt's, read where they are: none is copied into this
 * repository. Exit status 1 if any case differs.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { runDumpCommand } from '../../src/cli/dump-command.js';
import { runFlowCommand } from '../../src/cli/flow.js';
import { generatePtt, libiptTools, ROOT } from './ptt-vectors.js';
import { runIn, type Command } from './run-in.js';

/** `diff -ub`'s view of a text: runs of blanks equal, trailing blanks and empty last lines ignored. */
function normalized(text: string): string {
  const lines = text.split('\n').map((l) => l.replace(/[ \t]+/g, ' ').replace(/ +$/, ''));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n');
}

function main(argv: string[]): number {
  const all = argv.includes('--all');
  const keepAt = argv.indexOf('--keep');
  const keep = keepAt >= 0 ? resolve(argv[keepAt + 1] ?? '') : null;
  const rest = argv.filter((a, i) => a !== '--all' && (keepAt < 0 || (i !== keepAt && i !== keepAt + 1)));
  const [dir, ...only] = rest;
  if (dir === undefined || !existsSync(dir)) {
    console.error('usage: node dist/tools/conformance/upstream-ptt.js LIBIPT_TEST_SRC_DIR [--all] [--keep OUT] [NAME...]');
    return 2;
  }
  const sharedManifest = join(ROOT, '..', 'shared', 'vectors', 'libipt', 'MANIFEST.json');
  const shared = new Set((JSON.parse(readFileSync(sharedManifest, 'utf8')) as { name: string }[]).map((e) => e.name.split('@')[0]));
  const tools = libiptTools();
  let cases = 0;
  let checks = 0;
  const failed: string[] = [];
  const skipped: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ptt')).sort()) {
    const base = basename(file, '.ptt');
    if (only.length > 0 ? !only.includes(base) : !all && shared.has(base)) continue;
    let generated;
    try {
      generated = generatePtt(join(dir, file), tools);
    } catch (e) {
      // A .ptt this pttc cannot compile (an older format, a label it lacks) has no expectation.
      skipped.push(`${base}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    for (const c of generated) {
      cases++;
      const work = keep !== null ? join(keep, c.entry.name) : join(ROOT, 'build', 'upstream-ptt', c.entry.name);
      rmSync(work, { recursive: true, force: true });
      mkdirSync(work, { recursive: true });
      for (const [name, data] of c.files) writeFileSync(join(work, name), data);
      const runs: [string, Command, { exp: string; argv: string[] }][] = [['ptdump', runDumpCommand, c.entry.ptdump]];
      if (c.entry.ptxed !== null) {
        for (const decoder of ['--insn-decoder', '--block-decoder']) {
          runs.push([`ptxed${decoder}`, runFlowCommand, { exp: c.entry.ptxed.exp, argv: [decoder, ...c.entry.ptxed.argv] }]);
        }
      }
      for (const [kind, command, spec] of runs) {
        checks++;
        const actual = normalized(runIn(command, spec.argv, work, true));
        if (actual === normalized(readFileSync(join(work, spec.exp), 'utf8'))) continue;
        failed.push(`${c.entry.name} ${kind}`);
        if (keep !== null) writeFileSync(join(work, `${kind}.actual`), `${actual}\n`);
      }
      if (keep === null) rmSync(work, { recursive: true, force: true });
    }
  }
  for (const s of skipped) console.log(`not compiled: ${s}`);
  console.log(`${cases} cases (${checks} checks: ptdump, and ptxed with both decoders): ${checks - failed.length} agree with libipt, ${failed.length} differ`);
  for (const f of failed) console.log(`differs: ${f}`);
  return failed.length > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
