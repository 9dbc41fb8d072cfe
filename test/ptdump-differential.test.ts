/**
 * ptdump's text, differential: random packet streams of every kind libipt
 * knows, and mutated ones (byte flips, cuts, dropped PSBs), printed by
 * `ptscope dump` and by libipt's ptdump (the vectors' version), under option
 * sets that cover the columns and flags (raw bytes, last IP, exec mode,
 * time and calibration, errata). Every line must be equal.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDumpCommand } from '../src/cli/dump-command.js';
import { CliError, LineWriter } from '../src/cli/output.js';
import { encodeTrace } from '../src/packets/trace-writer.js';
import { randomStream, Rng } from '../bench/synthetic-trace.js';
import { libiptHeadBin } from './helpers/libipt-head.js';
import { normalizeLines } from './helpers/vectors.js';
import { mutate } from '../tools/conformance/mutate.js';

const work = mkdtempSync(join(tmpdir(), 'ptscope-ptdump-diff-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const TIME = ['--time', '--time-delta', '--nom-freq', '4', '--mtc-freq', '2', '--cpuid-0x15.eax', '1', '--cpuid-0x15.ebx', '2'];
/** Option sets for valid streams. */
const VALID_OPTIONS = [
  [],
  ['--lastip', '--exec-mode', '--raw', '--no-pad'],
  TIME,
  ['--tcal', '--no-offset', '--mtc-freq', '0', '--nom-freq', '2'],
  ['--cpu', '6/78', '--time', '--no-wall-clock', '--no-cyc'],
  ['--cpu', '6/85', '--raw', '--no-timing'],
];
/** Option sets for mutated streams. */
const MUTANT_OPTIONS = [[], ['--lastip', '--raw'], ['--cpu', '6/78', ...TIME], ['--cpu', '6/85', '--tcal', '--quiet']];

function ours(args: string[]): string {
  const out = new LineWriter(null);
  try {
    runDumpCommand(args, out, () => {});
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
  }
  out.flush();
  return out.text;
}

function theirs(args: string[]): string {
  const res = spawnSync(join(libiptHeadBin(), 'ptdump'), args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (res.error) throw res.error;
  return res.stdout;
}

function compare(bytes: Uint8Array, name: string, optionSets: string[][]): void {
  const file = join(work, `${name}.pt`);
  writeFileSync(file, bytes);
  for (const opts of optionSets) {
    const args = [...opts, file];
    const a = normalizeLines(ours(args));
    const b = normalizeLines(theirs(args));
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      const i = a.findIndex((l, k) => l !== b[k]);
      expect.fail(`${name} with ${opts.join(' ') || 'no options'}: line ${i + 1}\n  ptdump:  ${b[i]}\n  ptscope: ${a[i]}`);
    }
  }
}

describe('ptdump differential against the vectors\' libipt', () => {
  it('prints random streams of every packet kind exactly as ptdump', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const rng = new Rng(seed);
      compare(encodeTrace(randomStream(rng, 80, { noPebs: true })), `valid-${seed}`, VALID_OPTIONS);
    }
  });

  it('prints mutated streams (flips, cuts, dropped PSBs) exactly as ptdump, errors and resyncs included', () => {
    for (let seed = 1; seed <= 80; seed++) {
      const rng = new Rng(1000 + seed);
      const bytes = encodeTrace(randomStream(rng, 80, { noPebs: true }));
      compare(mutate(rng, bytes), `mutant-${seed}`, MUTANT_OPTIONS);
    }
  });
});
