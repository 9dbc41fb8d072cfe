/**
 * The hardware recorder (perf intel_pt//u). No machine here has Intel PT,
 * so: unit tests of perf's command line (perf-command.ts) and of every
 * refusal, and end-to-end runs of record() with a stand-in intel_pt sysfs
 * directory (RecordOptions.intelPtSysfs) and a stand-in `perf` on PATH. The
 * stand-in is honest about what it is: it writes perf.data's magic and its
 * own argv to the -o file, runs its workload (the words after --) and
 * passes its exit status on, and on SIGINT ends the workload with SIGTERM,
 * as perf record does (checked with the real perf and a software event).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElfFile } from '../src/flow/elf.js';
import { perfRecordArgs, readIntelPtCaps, type IntelPtCaps } from '../src/sources/recorder/perf-command.js';
import { record, RecordError, type RecordOptions } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';

const CAPS: IntelPtCaps = { addressFilters: 2, psbCyc: true, psbPeriods: 0x3f, mtc: true, mtcPeriods: 0x249 };
const NO_CAPS: IntelPtCaps = { addressFilters: 0, psbCyc: false, psbPeriods: 0, mtc: false, mtcPeriods: 0 };

/** A little-endian u64 as printf octal escapes, in sh. */
const LE64 = 'le64() { n=$1; i=0; while [ $i -lt 8 ]; do printf "\\\\$(printf %03o $((n % 256)))"; n=$((n / 256)); i=$((i + 1)); done; }';

/**
 * Stand-in for perf in tests (no Intel PT here). It writes to the -o file
 * perf.data's file header (perf.data-file-format.txt) whose data section
 * holds its own argv, one per line, then runs the workload after -- as perf
 * record does: its exit status passed on, and SIGINT or SIGTERM ending the
 * workload with SIGTERM. DATA_SIZE=0 leaves the data size unset, as a perf
 * killed before it completed perf.data does.
 */
const standInPerf = (dataSize: string): string => `#!/bin/sh
stop=
trap 'stop=1' INT TERM
${LE64}
out=; prev=
for a do
  [ "$a" = -- ] && break
  [ "$prev" = -o ] && out=$a
  prev=$a
done
size=$(printf '%s\\n' "$@" | wc -c)
{ printf PERFILE2; le64 104; le64 136; le64 104; le64 0; le64 104; le64 ${dataSize}; le64 0; le64 0; le64 0; le64 0; le64 0; le64 0; printf '%s\\n' "$@"; } > "$out" || exit 255
while [ "$1" != -- ]; do shift; done
shift
exec 3<&0
"$@" <&3 3<&- &
child=$!
exec 3<&-
trap 'kill -TERM $child 2>/dev/null' INT TERM
[ -n "$stop" ] && kill -TERM $child
wait $child
s=$?
while kill -0 $child 2>/dev/null; do wait $child; s=$?; done
exit $s
`;

let work: string;
let sysfs: string;
let savedPath: string | undefined;
let fixedAddress: string;

function opts(extra: Partial<RecordOptions> = {}): RecordOptions {
  return withRecordDefaults({ argv: ['/bin/true'], output: join(work, 'unused.ptscope'), timeoutSec: 0, ...extra });
}

function args(extra: Partial<RecordOptions> = {}, caps: IntelPtCaps = CAPS, program = '/bin/true'): string[] {
  return perfRecordArgs({ opts: opts(extra), caps, program: { path: program, elf: ElfFile.parse(readFileSync(program), program) }, perfData: '/out/perf.data' });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-hw-test-'));
  // The stand-in PMU: two address filters, PSB periods 2K..64K, MTC periods 0,3,6,9.
  sysfs = join(work, 'intel_pt');
  mkdirSync(join(sysfs, 'caps'), { recursive: true });
  writeFileSync(join(sysfs, 'nr_addr_filters'), '2\n');
  writeFileSync(join(sysfs, 'caps', 'psb_cyc'), '1\n');
  writeFileSync(join(sysfs, 'caps', 'psb_periods'), '003f\n');
  writeFileSync(join(sysfs, 'caps', 'mtc'), '1\n');
  writeFileSync(join(sysfs, 'caps', 'mtc_periods'), '249\n');
  const bin = join(work, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'perf'), standInPerf('$size'));
  chmodSync(join(bin, 'perf'), 0o755);
  savedPath = process.env.PATH;
  process.env.PATH = `${bin}:${savedPath ?? '/usr/bin:/bin'}`;
  // A fixed-address (ET_EXEC) program, the kind whose addresses perf's filters can name.
  writeFileSync(join(work, 'fixed.c'), 'int work(int n) { int s = 0; for (int i = 0; i < n; i++) s += i * i; return s; }\nint main(int argc, char **argv) { return work(argc) & 1; }\n');
  fixedAddress = join(work, 'fixed');
  const cc = spawnSync('gcc', ['-O1', '-no-pie', '-fno-pie', '-o', fixedAddress, join(work, 'fixed.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc fixed.c: ${cc.error?.message ?? cc.stderr}`);
});

afterAll(() => {
  process.env.PATH = savedPath;
  rmSync(work, { recursive: true, force: true });
});

describe('perf command line', () => {
  it('by default: intel_pt user-only, perf.data bounded by --max-trace-size, no build-id cache; no build-id reading of the sandbox\'s paths', () => {
    expect(args()).toEqual(['record', '-q', '-e', 'intel_pt//u', '--max-size=1073741824B', '--no-buildid-cache', '--no-buildid', '-o', '/out/perf.data']);
    expect(args({ sandbox: false, maxTraceBytes: 0 })).toEqual(['record', '-q', '-e', 'intel_pt//u', '--no-buildid-cache', '-o', '/out/perf.data']);
  });

  it('maps the PSB period, timing packets, MTC period and return compression to intel_pt config terms', () => {
    const a = args({ psbPeriod: 4096, timing: { tsc: true, cyc: true, mtcFreq: 3 }, retCompression: false });
    expect(a[3]).toBe('intel_pt/psb_period=1,tsc=1,mtc=0,cyc=1,mtc_period=3,noretcomp=1/u');
    expect(args({ psbPeriod: 65536, timing: { mtc: true } })[3]).toBe('intel_pt/psb_period=5,tsc=0,mtc=1,cyc=0/u');
  });

  it('a snapshot is perf\'s snapshot mode with a last snapshot at exit, and no size limit (as emulated)', () => {
    const a = args({ snapshotBytes: 64 * 1024, maxTraceBytes: 4096 });
    expect(a).toContain('--snapshot=e65536');
    expect(a.some((x) => x.startsWith('--max-size'))).toBe(false);
  });

  it('an address range of a fixed-address program is a filter on its file offsets (as objdump -F gives them)', () => {
    const elf = ElfFile.parse(readFileSync(fixedAddress), fixedAddress);
    const work = elf.symbols.find((s) => s.name === 'work')!;
    const dump = spawnSync('objdump', ['-d', '-F', '--disassemble=work', fixedAddress], { encoding: 'utf8' }).stdout;
    const offset = /<work> \(File Offset: (0x[0-9a-f]+)\):/.exec(dump)?.[1];
    expect(offset).toBeDefined();
    const a = args({ ranges: [{ from: work.value, to: work.value + 15 }] }, CAPS, fixedAddress);
    expect(a.slice(a.indexOf('--filter'), a.indexOf('--filter') + 2)).toEqual(['--filter', `filter ${offset}/0x10@${fixedAddress}`]);
    const two = args({ ranges: [{ from: work.value, to: work.value }, { from: work.value + 4, to: work.value + 7 }] }, CAPS, fixedAddress);
    expect(two[two.indexOf('--filter') + 1].split(',')).toHaveLength(2);
  });

  it('reads the PMU\'s capabilities from its sysfs directory; a missing file is an absent feature', () => {
    expect(readIntelPtCaps(sysfs)).toEqual(CAPS);
    expect(readIntelPtCaps(join(work, 'no-such-pmu'))).toEqual(NO_CAPS);
  });
});

describe('options perf cannot honour are refused in one line', () => {
  const refusals: Array<[string, () => unknown, string]> = [
    ['--max-insns', () => args({ maxInsns: 1000 }), 'record: --max-insns cannot be honoured with Intel PT hardware (perf has no instruction limit); use --emulate'],
    ['--long-tnt', () => args({ longTnt: true }), 'record: --long-tnt cannot be honoured with Intel PT hardware (the CPU chooses its TNT packets); use --emulate'],
    ['the recorder memory limit', () => args({ maxRecorderBytes: 1 << 20 }), "record: the recorder's memory limit cannot be honoured with Intel PT hardware (it bounds the emulator's translations); use --emulate"],
    ['--psb-period without psb_cyc', () => args({ psbPeriod: 4096 }, NO_CAPS), 'record: --psb-period cannot be honoured with Intel PT hardware (this CPU does not let the PSB period be set (caps/psb_cyc)); use --emulate'],
    ['--psb-period not a power of two', () => args({ psbPeriod: 3000 }), "record: --psb-period 3000 cannot be honoured with Intel PT hardware (this CPU's PSB periods are 2048, 4096, 8192, 16384, 32768, 65536 bytes); use --emulate"],
    ['--psb-period the CPU lacks', () => args({ psbPeriod: 1 << 20 }), "record: --psb-period 1048576 cannot be honoured with Intel PT hardware (this CPU's PSB periods are 2048, 4096, 8192, 16384, 32768, 65536 bytes); use --emulate"],
    ['--timing mtc without MTC', () => args({ timing: { mtc: true } }, NO_CAPS), 'record: --timing mtc cannot be honoured with Intel PT hardware (this CPU has no MTC packets (caps/mtc)); use --emulate'],
    ['--timing cyc without CYC', () => args({ timing: { cyc: true } }, NO_CAPS), 'record: --timing cyc cannot be honoured with Intel PT hardware (this CPU has no CYC packets (caps/psb_cyc)); use --emulate'],
    ['--mtc-freq the CPU lacks', () => args({ timing: { mtcFreq: 4 } }), "record: --mtc-freq 4 cannot be honoured with Intel PT hardware (this CPU's MTC periods are 0, 3, 6, 9); use --emulate"],
    ['--mtc-freq without MTC', () => args({ timing: { mtcFreq: 3 } }, NO_CAPS), 'record: --mtc-freq cannot be honoured with Intel PT hardware (this CPU has no MTC packets (caps/mtc)); use --emulate'],
    ['a set TSC base', () => args({ timing: { tscBase: 5 } }), "record: a set TSC base or CTC ratio cannot be honoured with Intel PT hardware (the CPU's own clocks give them); use --emulate"],
    ['--filter on a position-independent program', () => args({ ranges: [{ from: 0x1000, to: 0x1fff }] }), 'record: --filter 0x1000-0x1fff cannot be honoured with Intel PT hardware (the program is position-independent, so its run-time addresses are not known before it runs; perf filters on offsets in a file); use --emulate'],
    ['--filter outside the program', () => args({ ranges: [{ from: 0x7f0000000000, to: 0x7f0000000fff }] }, CAPS, fixedAddress), "record: --filter 0x7f0000000000-0x7f0000000fff cannot be honoured with Intel PT hardware (the range is not inside one loaded segment of the program's file; perf filters on offsets in a file); use --emulate"],
    ['more ranges than filters', () => args({ ranges: [{ from: 1, to: 2 }, { from: 3, to: 4 }, { from: 5, to: 6 }] }, CAPS, fixedAddress), "record: 3 --filter range(s) cannot be honoured with Intel PT hardware (this CPU's Intel PT filters at most 2 (nr_addr_filters)); use --emulate"],
    ['a filter on a CPU without filters', () => args({ ranges: [{ from: 1, to: 2 }] }, NO_CAPS, fixedAddress), "record: 1 --filter range(s) cannot be honoured with Intel PT hardware (this CPU's Intel PT filters at most 0 (nr_addr_filters)); use --emulate"],
    ['a filter on a bundle\'s program copy', () => args({ ranges: [{ from: 1, to: 2 }], program: { host: fixedAddress, guest: '/x' } }, CAPS, fixedAddress), "record: --filter cannot be honoured with Intel PT hardware (a bundle's copy of the program runs from a file perf's filter cannot name); use --emulate"],
  ];
  for (const [what, run, message] of refusals) {
    it(what, () => {
      let thrown: unknown = null;
      try {
        run();
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(RecordError);
      expect((thrown as Error).message).toBe(message);
      expect((thrown as Error).message).not.toContain('\n');
    });
  }
});

describe('record() on the hardware path (stand-in perf and PMU)', () => {
  /** What the stand-in perf wrote to perf.data: its argv. */
  function perfArgv(bundle: string): string[] {
    const data = readFileSync(join(bundle, 'perf.data'));
    expect(data.toString('latin1', 0, 8)).toBe('PERFILE2');
    const size = Number(data.readBigUInt64LE(48));
    expect(size).toBeGreaterThan(0);
    return data.toString('utf8', 104, 104 + size).split('\n').slice(0, -1);
  }

  it('runs the program inside the sandbox under perf, and writes a perf bundle', async () => {
    const secret = join(work, 'host-secret.txt');
    writeFileSync(secret, 'host secret\n');
    const notices: string[] = [];
    const res = await record(opts({
      argv: ['/bin/sh', '-c', `cat ${secret}; echo "host name $(cat /proc/sys/kernel/hostname)"; exit 3`],
      output: join(work, 'confined.ptscope'),
      intelPtSysfs: sysfs,
      stdio: 'pipe',
      notice: (l) => notices.push(l),
    }));
    // Confined as under emulation: the host file is outside the view, the host name is the sandbox's.
    expect(res.stdout).not.toContain('host secret');
    expect(res.stderr).toMatch(/No such file or directory/);
    expect(res.stdout).toContain('host name sandbox');
    const m = res.manifest;
    expect(m.recorder).toBe('perf');
    expect(m.exit).toEqual({ status: 3, signal: null, stopped: null });
    expect(m.trace).toBeNull();
    expect(m.perf).toEqual({ file: 'perf.data', imported: false });
    expect(m.config.sandbox).toBe(true);
    expect(m.config.perfArgs).toEqual(['record', '-q', '-e', 'intel_pt//u', '--max-size=1073741824B', '--no-buildid-cache', '--no-buildid', '-o', 'perf.data']);
    const onDisk = JSON.parse(readFileSync(join(res.bundle, 'manifest.json'), 'utf8'));
    expect(onDisk.recorder).toBe('perf');
    expect(onDisk.config.perfArgs).toEqual(m.config.perfArgs);
    // perf ran outside the sandbox (its -o is the host's staging directory), and its workload is bwrap with the sandbox's seccomp filter.
    const argv = perfArgv(res.bundle);
    const dash = argv.indexOf('--');
    expect(argv.slice(0, dash - 1)).toEqual((m.config.perfArgs as string[]).slice(0, -1));
    expect(argv[dash - 1]).toMatch(/\/\.confined\.ptscope\.partial-[^/]+\/perf\.data$/);
    expect(argv[dash + 1]).toBe('bwrap');
    expect(argv).toContain('--unshare-net');
    expect(argv).toContain('--seccomp');
    expect(argv).toContain('/bin/sh');
    expect(notices.some((n) => /emulation/.test(n))).toBe(false);
    expect(readdirSync(work).filter((n) => n.includes('.partial-'))).toEqual([]);
  });

  it('--filter and --snapshot reach perf as its address filter and snapshot mode', async () => {
    const elf = ElfFile.parse(readFileSync(fixedAddress), fixedAddress);
    const fn = elf.symbols.find((s) => s.name === 'work')!;
    const res = await record(opts({
      argv: [fixedAddress],
      output: join(work, 'filtered.ptscope'),
      ranges: [{ from: fn.value, to: fn.value + fn.size - 1 }],
      snapshotBytes: 4096,
      intelPtSysfs: sysfs,
      stdio: 'pipe',
      notice: () => {},
    }));
    const argv = perfArgv(res.bundle);
    const filter = argv[argv.indexOf('--filter') + 1];
    expect(filter).toMatch(new RegExp(`^filter 0x[0-9a-f]+/0x${fn.size.toString(16)}@${fixedAddress}$`));
    expect(argv).toContain('--snapshot=e4096');
    expect(res.manifest.config.perfArgs).toContain(filter);
    expect(res.manifest.config.filters).toEqual([{ from: `0x${fn.value.toString(16)}`, to: `0x${(fn.value + fn.size - 1).toString(16)}` }]);
    expect(res.manifest.config.snapshotBytes).toBe(4096);
    // The program ran: work(1) & 1 is 0.
    expect(res.manifest.exit.status).toBe(0);
  });

  it('--no-sandbox runs it unconfined under perf, and says so', async () => {
    const secret = join(work, 'host-secret-2.txt');
    writeFileSync(secret, 'visible\n');
    const notices: string[] = [];
    const res = await record(opts({
      argv: ['/bin/sh', '-c', `cat ${secret}`],
      output: join(work, 'unconfined.ptscope'),
      sandbox: false,
      intelPtSysfs: sysfs,
      stdio: 'pipe',
      notice: (l) => notices.push(l),
    }));
    expect(res.stdout).toBe('visible\n');
    expect(res.manifest.config.sandbox).toBe(false);
    expect(res.manifest.exit.status).toBe(0);
    expect(notices).toContain('warning: --no-sandbox: the program runs unconfined, with your network and files');
    expect(perfArgv(res.bundle)).not.toContain('bwrap');
  });

  it('--timeout interrupts perf, which ends the sandbox and keeps perf.data', async () => {
    const res = await record(opts({ argv: ['/bin/sleep', '30'], output: join(work, 'timeout.ptscope'), timeoutSec: 1, intelPtSysfs: sysfs, stdio: 'pipe', notice: () => {} }));
    expect(res.manifest.exit).toEqual({ status: null, signal: null, stopped: 'timeout' });
    expect(res.manifest.warnings).toContain('recording stopped: the program ran for --timeout 1 s; the trace up to there is kept');
    expect(existsSync(join(res.bundle, 'perf.data'))).toBe(true);
  });

  it('an option perf cannot honour is refused before anything runs, and nothing is kept', async () => {
    const output = join(work, 'refused.ptscope');
    await expect(record(opts({ argv: ['/bin/true'], output, maxInsns: 5, intelPtSysfs: sysfs, stdio: 'pipe', notice: () => {} })))
      .rejects.toThrow('record: --max-insns cannot be honoured with Intel PT hardware (perf has no instruction limit); use --emulate');
    expect(existsSync(output)).toBe(false);
    expect(readdirSync(work).filter((n) => n.includes('.partial-'))).toEqual([]);
  });

  /** record() with another stand-in perf first on PATH. */
  async function withPerf<T>(script: string, run: () => Promise<T>): Promise<T> {
    const bin = mkdtempSync(join(work, 'other-perf-'));
    writeFileSync(join(bin, 'perf'), script);
    chmodSync(join(bin, 'perf'), 0o755);
    const saved = process.env.PATH;
    process.env.PATH = `${bin}:${saved}`;
    try {
      return await run();
    } finally {
      process.env.PATH = saved;
    }
  }

  it('a run where perf writes no perf.data is an error, and nothing is kept', async () => {
    const output = join(work, 'failed.ptscope');
    await withPerf('#!/bin/sh\necho "event syntax error: intel_pt" >&2\nexit 129\n', () =>
      expect(record(opts({ argv: ['/bin/true'], output, intelPtSysfs: sysfs, stdio: 'pipe', notice: () => {} })))
        .rejects.toThrow('record: perf did not complete perf.data (exit 129): event syntax error: intel_pt; nothing was kept (try --emulate)'));
    expect(existsSync(output)).toBe(false);
  });

  it('a perf.data whose header perf never completed is an error, and nothing is kept', async () => {
    const output = join(work, 'incomplete.ptscope');
    await withPerf(standInPerf('0'), () =>
      expect(record(opts({ argv: ['/bin/true'], output, intelPtSysfs: sysfs, stdio: 'pipe', notice: () => {} })))
        .rejects.toThrow('record: perf did not complete perf.data (exit 0); nothing was kept (try --emulate)'));
    expect(existsSync(output)).toBe(false);
    expect(readdirSync(work).filter((n) => n.includes('.partial-'))).toEqual([]);
  });
});
