/**
 * The libipt 2.0.5 oracle (test/oracle/ptoracle.c) and the differential
 * packet test built on it: ptscope's packet decoder must print exactly what
 * libipt prints, line by line, on every vector libipt 2.0.5 understands.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { ensureOracle, runOracle } from './helpers/oracle.js';
import { neutralDumpDetailed } from './helpers/neutral-packets.js';

const SHARED = process.env.PTSCOPE_SHARED ?? '/work/shared';
const REAL = join(SHARED, 'traces', 'real');
const VECTORS = join(SHARED, 'vectors', 'libipt');

interface Image {
  file: string;
  address: string;
}

interface RealCase {
  name: string;
  pt: string;
  images: Image[];
  insn: number;
  ipseq_fnv1a64: string;
}

interface VectorCase {
  name: string;
  pt: string;
  images?: Image[];
  cpu: string | null;
  ptxed?: { argv: string[] };
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** 64-bit FNV-1a over each IP as 8 little-endian bytes, computed here. */
function fnv1a64(ips: readonly bigint[]): string {
  const prime = 0x100000001b3n;
  const mask = (1n << 64n) - 1n;
  let hash = 0xcbf29ce484222325n;
  for (const ip of ips) {
    for (let byte = 0n; byte < 8n; byte++) {
      hash ^= (ip >> (8n * byte)) & 0xffn;
      hash = (hash * prime) & mask;
    }
  }
  return hash.toString(16).padStart(16, '0');
}

function imageArgs(images: readonly Image[]): string[] {
  return images.flatMap((img) => ['--raw', `${img.file}:${img.address}`]);
}

/** Parse `insn --hash` output into its two values. */
function parseHash(out: string): { insn: number; hash: string } {
  const insn = /^insn (\d+)$/m.exec(out);
  const hash = /^fnv1a64 ([0-9a-f]{16})$/m.exec(out);
  if (!insn || !hash) throw new Error(`unexpected ptoracle --hash output: ${out}`);
  return { insn: Number(insn[1]), hash: hash[1] };
}

beforeAll(() => {
  ensureOracle();
});

describe('ptoracle build', () => {
  it('builds an executable oracle', () => {
    const bin = ensureOracle();
    expect(existsSync(bin)).toBe(true);
  });

  it('rejects bad arguments with exit status 2', () => {
    expect(() => runOracle(['packets'])).toThrow(/exited with 2: .*missing trace file/);
    expect(() => runOracle(['insn', '--cpu', '6', 'x.pt'])).toThrow(/exited with 2/);
    expect(() => runOracle(['nonsense'])).toThrow(/exited with 2/);
  });
});

describe('ptoracle insn on the real traces', () => {
  const cases = readJson<RealCase[]>(join(REAL, 'MANIFEST.json'));

  for (const c of cases) {
    const dir = join(REAL, c.name);
    const args = ['insn', '--cpu', '6/158', ...imageArgs(c.images), c.pt];

    it(`${c.name}: instruction count matches the manifest`, () => {
      const { insn } = parseHash(runOracle([...args, '--hash'], dir));
      expect(insn).toBe(c.insn);
    });

    // The manifest's ipseq_fnv1a64 comes from the newer libipt of the
    // vectors. libipt 2.0.5 gives the same counts but not that hash (checked
    // by hand on all three traces), so the oracle is held to the counts and
    // to its own listing here; ptscope's flow tests check the manifest hash.
  }

  // The C hash must equal a hash of the printed listing computed here, so a
  // mismatch with the manifest is about the IPs, not the hashing.
  for (const c of cases.filter((k) => k.insn < 1_000_000)) {
    it(`${c.name}: --hash agrees with the --ips listing`, () => {
      const dir = join(REAL, c.name);
      const args = ['insn', '--cpu', '6/158', ...imageArgs(c.images), c.pt];
      const listing = runOracle(args, dir).split('\n').filter((l) => l !== '');
      const ips = listing.filter((l) => !l.startsWith('error ')).map((l) => BigInt(`0x${l}`));
      const { insn, hash } = parseHash(runOracle([...args, '--hash'], dir));
      expect(ips.length).toBe(insn);
      expect(hash).toBe(fnv1a64(ips));
    });
  }

  it('dyn_test: reports every error after a resync, with offset, IP and name', () => {
    const c = cases.find((k) => k.name === 'dyn_test');
    expect(c).toBeDefined();
    const dir = join(REAL, 'dyn_test');
    const out = runOracle(['insn', '--cpu', '6/158', ...imageArgs(c!.images), c!.pt], dir);
    const errors = out.split('\n').filter((l) => l.startsWith('error '));
    // libipt 2.0.5 finds fewer "no memory mapped" errors than the newer
    // libipt of the .exp (14), but several, each in ptxed's position format.
    expect(errors.length).toBeGreaterThan(5);
    for (const line of errors) expect(line).toMatch(/^error [0-9a-f]+ [0-9a-f]+ nomap$/);
  });
});

describe('ptoracle raw image syntax', () => {
  // truncated.bin holds 90 eb 01 f4 90 f4: nop; jmp +1; hlt; nop; hlt.
  const dir = join(VECTORS, 'truncated');
  const run = (...specs: string[]): string =>
    runOracle(['insn', ...specs.flatMap((s) => ['--raw', s]), 'truncated.pt'], dir);

  it('decodes the manifest argv (FILE:ADDR plus FILE:OFFSET:ADDR) like ptxed', () => {
    const vec = readJson<VectorCase[]>(join(VECTORS, 'MANIFEST.json')).find(
      (v) => v.name === 'truncated',
    );
    const argv = vec!.ptxed!.argv;
    const specs = argv.filter((_, i) => argv[i - 1] === '--raw');
    expect(specs).toEqual(['truncated.bin:0x1000', 'truncated.bin:0x2:0x1002']);
    const expected = readFileSync(join(dir, 'truncated-ptxed.exp'), 'utf8')
      .split('\n')
      .filter((l) => /^[0-9a-f]{16}$/.test(l))
      .map((l) => BigInt(`0x${l}`).toString(16));
    expect(run(...specs).trimEnd().split('\n')).toEqual(expected);
  });

  it('accepts FILE:FROM-TO:ADDR and the @ADDR spellings', () => {
    const reference = run('truncated.bin:0x1000', 'truncated.bin:0x2:0x1002');
    expect(run('truncated.bin:0x1000', 'truncated.bin:2@0x1002')).toBe(reference);
    expect(run('truncated.bin:0x1000', 'truncated.bin:0x2-6:0x1002')).toBe(reference);
    expect(run('truncated.bin:0x1000', 'truncated.bin:2-6@4098')).toBe(reference);
  });

  it('maps only the FROM-TO range (TO exclusive, as in ptxed)', () => {
    // Two bytes: the jmp at 0x1001 is cut off.
    expect(run('truncated.bin:0-2:0x1000')).toBe('1000\nerror 1f 1001 bad_insn\n');
    // Three bytes: the jmp fits, its target 0x1004 is not mapped.
    expect(run('truncated.bin:0-3@0x1000')).toBe('1000\n1001\nerror 1f 1004 nomap\n');
    expect(() => run('truncated.bin:4-2:0x10')).toThrow(/exited with 2: .*end must be above start/);
    expect(() => run('truncated.bin')).toThrow(/exited with 2: .*load address/);
  });
});

describe('ptoracle packets', () => {
  for (const name of ['apl11@cpu_6_92', 'bad_cpu', 'truncated']) {
    it(`${name}: prints a non-trivial neutral dump ending with "end"`, () => {
      const vec = readJson<VectorCase[]>(join(VECTORS, 'MANIFEST.json')).find(
        (v) => v.name === name,
      );
      expect(vec).toBeDefined();
      const lines = runOracle(['packets', vec!.pt], join(VECTORS, name)).trimEnd().split('\n');
      expect(lines.length).toBeGreaterThan(3);
      expect(lines[0]).toMatch(/^[0-9a-f]+ psb$/);
      expect(lines.some((l) => / (fup|tip\.pgd|tip\.pge|tip) [0-6] [0-9a-f]+$/.test(l))).toBe(true);
      expect(lines[lines.length - 1]).toMatch(/^end [0-9a-f]+$/);
    });
  }
});

describe('ptscope packet decoder against libipt 2.0.5', () => {
  it('prints the same neutral dump for every vector trace 2.0.5 knows', () => {
    const vectors = readJson<VectorCase[]>(join(VECTORS, 'MANIFEST.json'));
    let compared = 0;
    let withErrors = 0;
    const skipped: string[] = [];
    const mismatches: string[] = [];

    for (const v of vectors) {
      const dir = join(VECTORS, v.name);
      const buf = new Uint8Array(readFileSync(join(dir, v.pt)));
      const ours = neutralDumpDetailed(buf);
      if (ours.unknownToLibipt205.length > 0) {
        skipped.push(`${v.name} (${ours.unknownToLibipt205.join(', ')})`);
        continue;
      }
      const theirs = runOracle(['packets', v.pt], dir);
      compared++;
      if (/^error /m.test(theirs)) withErrors++;
      if (ours.text !== theirs) mismatches.push(firstDifference(v.name, ours.text, theirs));
    }

    console.info(
      `neutral packet dumps: ${compared} vectors compared (${withErrors} with decode errors), ` +
        `${skipped.length} skipped: ${skipped.join('; ')}`,
    );
    expect(mismatches).toEqual([]);
    expect(compared).toBeGreaterThan(300);
    // The error/resync path must be exercised too, not only clean streams.
    expect(withErrors).toBeGreaterThan(0);
    expect(compared + skipped.length).toBe(vectors.length);
  });
});

describe('ptscope packet decoder against libipt 2.0.5, beyond the vectors', () => {
  it('agrees on the real traces', () => {
    const cases = readJson<RealCase[]>(join(REAL, 'MANIFEST.json'));
    for (const c of cases) {
      const dir = join(REAL, c.name);
      const ours = neutralDumpDetailed(new Uint8Array(readFileSync(join(dir, c.pt))));
      expect(ours.unknownToLibipt205).toEqual([]);
      const theirs = runOracle(['packets', c.pt], dir);
      expect(firstDifference(c.name, ours.text, theirs)).toBe(`${c.name}: equal`);
    }
  });

  it('agrees on corrupted vector traces (error and resync paths)', () => {
    // Deterministic damage to each vector trace: overwrite a few bytes with
    // pseudo-random values, or cut the trace short. Variants that produce a
    // packet 2.0.5 does not know are left out, as above.
    const vectors = readJson<VectorCase[]>(join(VECTORS, 'MANIFEST.json'));
    const work = mkdtempSync(join(tmpdir(), 'ptoracle-'));
    let seed = 0x2545f491;
    const random = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };

    let compared = 0;
    let withErrors = 0;
    const mismatches: string[] = [];
    try {
      const seen = new Set<string>();
      for (const v of vectors) {
        const original = readFileSync(join(VECTORS, v.name, v.pt));
        // Folders for other CPUs hold the same trace: damage each once.
        const key = original.toString('base64');
        if (seen.has(key) || original.length < 4) continue;
        seen.add(key);

        for (let variant = 0; variant < 4; variant++) {
          const buf = new Uint8Array(original);
          let bytes = buf;
          if (variant === 3) {
            bytes = buf.subarray(0, 1 + random(buf.length - 1));
          } else {
            for (let k = 0; k <= variant; k++) buf[random(buf.length)] = random(256);
          }
          const ours = neutralDumpDetailed(bytes);
          if (ours.unknownToLibipt205.length > 0) continue;
          const file = join(work, `${v.name}.${variant}.pt`);
          writeFileSync(file, bytes);
          const theirs = runOracle(['packets', file]);
          compared++;
          if (/^error /m.test(theirs)) withErrors++;
          if (ours.text !== theirs) mismatches.push(firstDifference(`${v.name}#${variant}`, ours.text, theirs));
        }
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }

    console.info(`corrupted traces: ${compared} compared, ${withErrors} with decode errors`);
    expect(mismatches).toEqual([]);
    expect(compared).toBeGreaterThan(100);
    expect(withErrors).toBeGreaterThan(20);
  });
});

/** A short description of the first differing line of two dumps. */
function firstDifference(name: string, ours: string, theirs: string): string {
  const a = ours.split('\n');
  const b = theirs.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `${name}: line ${i + 1}: ptscope "${a[i] ?? '<none>'}" libipt "${b[i] ?? '<none>'}"`;
  }
  return `${name}: equal`;
}
