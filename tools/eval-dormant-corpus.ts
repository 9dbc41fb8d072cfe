/**
 * The dormant-code corpus as ordinary builds: every multi-step sample of
 * corpus/dormant/ built from the same source at -O0, -O1, -O2 (no PIE) and
 * -O2 -fPIE -pie, each with its checks inlined or kept as calls
 * (guard-fn.h's GUARD_NOINLINE). test/dormant*.test.ts uses a few of these
 * builds; tools/eval-dormant.ts runs the whole matrix.
 *
 * A sample with a library (shlib, shlibenv) links its check from the
 * program's own shared library, built from corpus/dormant/<library>.c at
 * the same optimisation (-fPIC -shared) into lib-named files beside the
 * program and found the ordinary way, through DT_RUNPATH $ORIGIN. The
 * sandbox does not show the program's directory, so the first recording
 * names the library with --allow-read (`allowRead`); re-runs show the
 * bundle's copy at the recorded path.
 *
 * Samples marked held-out were written to the list and are kept
 * out of everything the analysis was tuned against (the tests never use
 * them); their results are reported apart.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeDormant, type DormantReport } from '../src/analyses/dormant/dormant.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { cachedGcc } from './corpus/content-cache.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** The repository root, from tools/ or dist/tools/. */
export const REPO = existsSync(join(HERE, '..', 'corpus')) ? resolve(HERE, '..') : resolve(HERE, '..', '..');
export const CORPUS = join(REPO, 'corpus', 'dormant');
export const OUT = join(REPO, 'build', 'dormant', 'eval');

export interface DormantSample {
  name: string;
  /** Held out of tuning: never used by the tests, reported apart. */
  heldOut: boolean;
  /** Extra arguments for the recorded run. */
  args: string[];
  /** The program's own shared library it links (corpus/dormant/<library>.c), if any. */
  library?: string;
}

/** The multi-step samples (the single-step demo samples are in test/dormant.test.ts). */
export const SAMPLES: readonly DormantSample[] = [
  { name: 'threeguard', heldOut: false, args: [] },
  { name: 'envdate', heldOut: false, args: [] },
  { name: 'argvloop', heldOut: false, args: ['-v', 'input', '--fast'] },
  { name: 'datefilehost', heldOut: true, args: [] },
  { name: 'sleepbomb', heldOut: true, args: [] },
  { name: 'shlib', heldOut: false, args: [], library: 'libcheck' },
  { name: 'shlibenv', heldOut: true, args: [], library: 'libcheck' },
  { name: 'levelarch', heldOut: false, args: [] },
  { name: 'cfgscan', heldOut: true, args: [] },
];

export interface Build {
  name: string;
  flags: string[];
}

const OPT_LEVELS: Build[] = [
  { name: 'O0', flags: ['-O0', '-no-pie'] },
  { name: 'O1', flags: ['-O1', '-no-pie'] },
  { name: 'O2', flags: ['-O2', '-no-pie'] },
  { name: 'O2-pie', flags: ['-O2', '-fPIE', '-pie'] },
];

/** Every build: each optimisation level with the checks inlined (as the compiler likes) and not. */
export const BUILDS: readonly Build[] = OPT_LEVELS.flatMap((b) => [
  b,
  { name: `${b.name}-noinline`, flags: [...b.flags, '-DGUARD_NOINLINE'] },
]);

export function buildByName(name: string): Build {
  const b = BUILDS.find((x) => x.name === name);
  if (b === undefined) throw new Error(`no build ${name}`);
  return b;
}

/** The shared library a sample links, built for `build` (the file name the program's DT_NEEDED names). */
export function libraryPath(sample: DormantSample, build: Build, outDir = OUT): string | null {
  return sample.library === undefined ? null : join(outDir, `${sample.library}.${build.name}.so`);
}

/** Compile a sample, and its library if it has one (cached by content: tools/corpus/content-cache.ts). */
export function compile(sample: DormantSample, build: Build, outDir = OUT): string {
  mkdirSync(outDir, { recursive: true });
  const src = join(CORPUS, `${sample.name}.c`);
  const exe = join(outDir, `${sample.name}.${build.name}`);
  const lib = libraryPath(sample, build, outDir);
  const headers = [join(CORPUS, 'payload.h'), join(CORPUS, 'guard-fn.h')];
  if (lib !== null) {
    // The library: the build's optimisation and inlining, always position-independent.
    const libSource = join(CORPUS, `${sample.library}.c`);
    const flags = build.flags.filter((f) => f !== '-no-pie' && f !== '-pie' && f !== '-fPIE');
    cachedGcc(lib, [...flags, '-fPIC', '-shared', libSource], [libSource, join(CORPUS, `${sample.library}.h`), ...headers], `${sample.library} ${build.name}`);
  }
  const link = lib === null ? [] : [`-L${outDir}`, `-l:${basename(lib)}`, '-Wl,-rpath,$ORIGIN'];
  cachedGcc(exe, [...build.flags, src, ...link], [src, ...headers, ...(lib === null ? [] : [lib, join(CORPUS, `${sample.library}.h`)])], `${sample.name} ${build.name}`);
  return exe;
}

/** Record one build; returns the bundle and the first run's output. */
export async function recordBuild(sample: DormantSample, build: Build, outDir = OUT): Promise<{ bundle: string; stdout: string }> {
  const exe = compile(sample, build, outDir);
  const bundle = `${exe}.ptscope`;
  const lib = libraryPath(sample, build, outDir);
  const res = await record(withRecordDefaults({
    ...(lib !== null ? { allowRead: [lib] } : {}),
    argv: [exe, ...sample.args], output: bundle, force: true, hardware: false, stdio: 'pipe', notice: () => {},
  }));
  return { bundle, stdout: res.stdout };
}

export interface EvalRow {
  sample: string;
  build: string;
  heldOut: boolean;
  /** The first run did not run the payload (a precondition of the case). */
  dormant: boolean;
  /** A never-run region holding the payload call was found. */
  found: boolean;
  proved: boolean;
  rounds: number;
  reason: string | null;
  report: DormantReport;
}

/** The region that calls the payload, if the analysis found one. */
export function payloadRegion(report: DormantReport): DormantReport['regions'][number] | undefined {
  return report.regions.find((r) => r.calls.some((c) => c === 'payload' || c.startsWith('payload.')));
}

/** Record, analyse with iterative re-runs, and score one build of a sample. */
export async function evaluate(sample: DormantSample, build: Build, outDir = OUT): Promise<EvalRow> {
  const { bundle, stdout } = await recordBuild(sample, build, outDir);
  const report = await analyzeDormant(bundle, { rerun: true, maxRegions: 3, timeoutMs: 60_000 });
  const region = payloadRegion(report);
  return {
    sample: sample.name,
    build: build.name,
    heldOut: sample.heldOut,
    dormant: !stdout.includes('payload:'),
    found: region !== undefined,
    proved: region?.status === 'proven' && (region.proof?.output.includes(`dormant-marker-${sample.name}`) ?? false),
    rounds: region?.rounds.length ?? 0,
    reason: region?.reason ?? (region === undefined ? 'no never-run region calls the payload' : null),
    report,
  };
}
