/**
 * Real-CPU traces (/work/shared/traces/real): ptscope flow against ptxed's
 * recorded `--stat` output and, differentially, against libipt itself
 * (Debian's libipt 2.0.5 through test/oracle/ptoracle.c).
 *
 * About the manifest's `ipseq_fnv1a64`: it cannot be reproduced by libipt
 * 2.0.5 either. The oracle (`ptoracle insn --cpu 6/158 ... --hash`) and
 * ptscope agree exactly, with the manifest's instruction counts:
 *
 *   trace     insn      manifest hash     libipt 2.0.5 = ptscope
 *   unzip     149576    514943b6451e427d  23a39ee2459f8f7f
 *   mruby     6334131   9d57e42df65e23eb  (computed at test time)
 *   dyn_test  870       22a4d159b50043de  cff7d5920bafe044
 *
 * The manifest's hash was made some other way (another IP encoding or
 * sequence), so the tests compare with the oracle's hash computed at test
 * time instead: a real differential check of every instruction address.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFlowCommand } from '../src/cli/flow.js';
import { LineWriter } from '../src/cli/output.js';
import { IpSequenceHash } from '../src/sources/recorder/ip-sequence-hash.js';
import { runOracle } from './helpers/oracle.js';
import { normalizeLines, REAL_TRACES } from './helpers/vectors.js';

interface RealTrace {
  name: string;
  pt: string;
  images: { file: string; address: string }[];
  insn: number;
  ipseq_fnv1a64: string;
  ptxed: { exp: string; argv: string[] };
}

/** One ptxed diagnostic: `[offset, ip: error: message]`. */
interface FlowError {
  offset: number;
  ip: bigint;
  text: string;
}

const DIAG = /^\[([0-9a-f]+), ([0-9a-f]+): error: (.*)\]$/;

/**
 * Collects `ptscope flow --no-inst` output without keeping the listing:
 * instruction addresses go into the FNV-1a hash, diagnostics into a list.
 */
class HashingWriter extends LineWriter {
  readonly hash = new IpSequenceHash();
  readonly errors: FlowError[] = [];

  constructor() {
    super(null);
  }

  override line(text: string): void {
    const ip = /^(?:\? )?([0-9a-f]{16})$/.exec(text);
    if (ip) {
      this.hash.add(Number(BigInt.asIntN(64, BigInt('0x' + ip[1]))));
      return;
    }
    const d = DIAG.exec(text);
    if (d) this.errors.push({ offset: parseInt(d[1]!, 16), ip: BigInt('0x' + d[2]), text: d[3]! });
  }
}

function flowInto(out: LineWriter, argv: string[], cwd: string): void {
  const prev = process.cwd();
  process.chdir(cwd);
  try {
    runFlowCommand(argv, out);
  } finally {
    process.chdir(prev);
  }
  out.flush();
}

function flowText(argv: string[], cwd: string): string {
  const out = new LineWriter(null);
  flowInto(out, argv, cwd);
  return out.text;
}

/** ptxed's argv without the options that turn the listing off. */
function listingArgv(t: RealTrace): string[] {
  return t.ptxed.argv.filter((a) => a !== '--quiet' && a !== '--stat' && a !== '--stat:insn');
}

/** The oracle's argv for the same decode: `--cpu` and `--raw` as given to ptxed, then the trace. */
function oracleArgv(t: RealTrace): string[] {
  const args: string[] = [];
  const argv = t.ptxed.argv;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--cpu' || argv[i] === '--raw') args.push(argv[i]!, argv[++i]!);
  }
  return [...args, t.pt];
}

const traces = JSON.parse(readFileSync(join(REAL_TRACES, 'MANIFEST.json'), 'utf8')) as RealTrace[];

describe('real-CPU traces', () => {
  for (const t of traces) {
    const dir = join(REAL_TRACES, t.name);

    it(`${t.name}: --insn-decoder matches ptxed --stat and the manifest count`, () => {
      const expected = readFileSync(join(dir, t.ptxed.exp), 'utf8');
      const actual = flowText(['--insn-decoder', ...t.ptxed.argv], dir);
      expect(normalizeLines(actual)).toEqual(normalizeLines(expected));
      expect(actual).toContain(`insn: ${t.insn}.`);
    });

    it(`${t.name}: --block-decoder gives the manifest instruction count`, () => {
      const text = flowText(['--block-decoder', ...t.ptxed.argv], dir);
      expect(text).toContain(`insn: ${t.insn}.`);
    });

    it(`${t.name}: every instruction address agrees with libipt (IP sequence hash)`, { timeout: 120_000 }, () => {
      const oracle = runOracle(['insn', ...oracleArgv(t), '--hash'], dir);
      const count = /^insn (\d+)$/m.exec(oracle);
      const hash = /^fnv1a64 ([0-9a-f]{16})$/m.exec(oracle);
      expect(count && hash, `oracle output: ${oracle}`).toBeTruthy();

      const out = new HashingWriter();
      flowInto(out, ['--insn-decoder', '--no-inst', ...listingArgv(t)], dir);
      expect(out.hash.count).toBe(Number(count![1]));
      expect(out.hash.count).toBe(t.insn);
      expect(out.hash.hex()).toBe(hash![1]);
    });
  }

  /*
   * dyn_test runs into unmapped code 14 times (the recorded ptxed output,
   * from the newer libipt the vectors come from). libipt 2.0.5 reports 12
   * of them: the same addresses in the same order, while two
   * (7ffff75de315, 7ffff786f860) are not reported by 2.0.5. The offsets
   * differ because 2.0.5 reports where its query decoder stands while the
   * newer libipt (and ptscope) report the packet its event decoder read
   * ahead to, e.g. 1ac8 vs 1acf, 2264 vs 2210, 2404 vs 23b0; only 2108
   * agrees. At 7ffff75dde50 (tracing enabled into unmapped code, then
   * disabled), 2.0.5 has already read into the next PSB+ (2264) while the
   * newer libipt stops at the TIP.PGD (2210); each syncs forward from
   * there, so only the newer one decodes the PSB at 2220 and hits the
   * unmapped FUP address 7ffff75de315 (the same happens at 23b0/2404).
   * Where both report an error, the offsets are a few packets apart.
   */
  it('dyn_test: decode errors agree with libipt 2.0.5 where both report one', () => {
    const t = traces.find((x) => x.name === 'dyn_test');
    expect(t).toBeDefined();
    const dir = join(REAL_TRACES, t!.name);
    const out = new HashingWriter();
    flowInto(out, ['--insn-decoder', '--no-inst', ...listingArgv(t!)], dir);

    const oracle = runOracle(['insn', ...oracleArgv(t!)], dir)
      .split('\n')
      .map((l) => /^error ([0-9a-f]+) ([0-9a-f]+) (\S+)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ offset: parseInt(m[1]!, 16), ip: BigInt('0x' + m[2]), name: m[3]! }));
    expect(oracle.length).toBeGreaterThan(0);
    expect(out.errors.length).toBeGreaterThanOrEqual(oracle.length);

    // Each of 2.0.5's errors, in order, is one of ours: same address, same
    // kind, and the trace offsets at most a PSB period (0x100 here) apart.
    let k = 0;
    for (const o of oracle) {
      while (k < out.errors.length && out.errors[k]!.ip !== o.ip) k++;
      expect(k, `2.0.5 error at ${o.offset.toString(16)}, ${o.ip.toString(16)} not reported by ptscope`).toBeLessThan(
        out.errors.length,
      );
      const ours = out.errors[k]!;
      expect(o.name).toBe('nomap');
      expect(ours.text).toBe('no memory mapped at this address');
      expect(Math.abs(ours.offset - o.offset)).toBeLessThan(0x100);
      k++;
    }
  });
});
