/**
 * ptscope's own conformance vectors, made the way libipt makes its own:
 * each case is an annotated assembly file (`test/conformance/ptt/NAME.ptt`,
 * the format of libipt's doc/howto_pttc.md), compiled by libipt's pttc into
 * a trace and a code image. The expected output is what libipt's ptdump and
 * ptxed print for it, run as libipt's script/test.bash runs them, with the
 * libipt the shared vectors come from (built by test/oracle/build-libipt.sh;
 * its ptxed runs over a XED stand-in, hence always with --no-inst).
 *
 * The result has the layout and MANIFEST.json of the shared vectors
 * (`test/conformance/vectors/`), so the conformance suites read both alike.
 *
 *   node dist/tools/conformance/ptt-vectors.js           # regenerate every case
 *   node dist/tools/conformance/ptt-vectors.js NAME...   # some cases
 *
 * Annotations read from a .ptt (as test.bash reads them):
 *   `; cpu F/M[/S]`          run the case once per CPU line (errata);
 *   `; opt:ptdump ARGS`      extra ptdump arguments;
 *   `; opt:ptxed ARGS`       extra ptxed arguments;
 *   `@pt .exp(ptxed)`        the case has a ptxed expectation (ptdump always has one);
 *   `org ADDR`               where the code image is loaded.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Repository root (this file runs as dist/tools/conformance/*.js or tools/conformance/*.ts). */
export const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

export const PTT_DIR = join(ROOT, 'test', 'conformance', 'ptt');
export const VECTOR_DIR = join(ROOT, 'test', 'conformance', 'vectors');

/** One manifest entry, as in ../shared/vectors/libipt/MANIFEST.json. */
export interface ManifestEntry {
  name: string;
  pt: string;
  images: { file: string; address: string }[];
  cpu: string | null;
  sideband_args: string[];
  ptdump: { exp: string; argv: string[] };
  ptxed: { exp: string; argv: string[] } | null;
  /** The .ptt the case was compiled from, relative to the repository. */
  source: string;
}

/** A generated case: its manifest entry and the files of its folder. */
export interface GeneratedCase {
  entry: ManifestEntry;
  files: Map<string, Buffer>;
}

/** Build (if needed) the vectors' libipt tools; their folder. */
export function libiptTools(): string {
  const res = spawnSync('bash', [join(ROOT, 'test', 'oracle', 'build-libipt.sh')], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`build-libipt.sh failed: ${(res.stderr || res.stdout || String(res.error)).trim()}`);
  return res.stdout.trim().split('\n').pop()!;
}

function annotations(text: string, key: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`^[ \\t]*;[ \\t]*${key}[ \\t]+(.*?)[ \\t]*$`, 'gm');
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[1]!);
  return out;
}

function words(args: string[]): string[] {
  return args.join(' ').split(/\s+/).filter((w) => w !== '');
}

/** The `org` address of the code, as the assembly writes it. */
function orgOf(text: string): string {
  const m = /^[ \t]*org[ \t]+([^ \t;\n]+)/im.exec(text);
  if (!m) throw new Error('org directive not found');
  return m[1]!;
}

/** Run an oracle tool; a case that makes it run away (libipt has no loop guard) is an error. */
function run(cmd: string, args: string[], cwd: string): string {
  const res = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 24, timeout: 20_000 });
  if (res.error) throw new Error(`${basename(cmd)} ${args.join(' ')} in ${cwd}: ${res.error.message}`);
  return res.stdout;
}

/** Sideband options for a pttc .sb file name, as test.bash derives them. */
function sidebandArgs(file: string, base: string): string[] {
  const sbBase = file.replace(/\.sb$/, '');
  const part = sbBase.startsWith(`${base}-`) ? sbBase.slice(base.length + 1) : sbBase;
  const comma = part.indexOf(',');
  const prefix = comma < 0 ? part : part.slice(0, comma);
  const options = comma < 0 ? '' : part.slice(comma);
  const prio = prefix.slice(prefix.lastIndexOf('-') + 1);
  const prefix2 = prefix.slice(0, prefix.length - prio.length - 1);
  const format = prefix2.slice(prefix2.lastIndexOf('-') + 1);
  const out: string[] = [];
  for (const opt of options.split(',').filter((o) => o !== '')) {
    const [k, v] = opt.split('=') as [string, string];
    out.push(`--${format}:${k}`, v);
  }
  out.push(`--${format}:${prio}`, file);
  return out;
}

/** Compile one .ptt for one CPU (or none) and run the oracle tools on it. */
export function generateCase(pttPath: string, cpu: string | null, tools: string): GeneratedCase {
  const text = readFileSync(pttPath, 'utf8');
  const base = basename(pttPath, '.ptt');
  const cpuArgs = cpu ? ['--cpu', cpu] : [];
  const suffix = cpu ? `-cpu_${cpu.replace(/\//g, '_')}` : '';
  const work = mkdtempSync(join(tmpdir(), 'ptscope-ptt-'));
  try {
    copyFileSync(pttPath, join(work, `${base}.ptt`));
    const res = spawnSync(join(tools, 'pttc'), [...cpuArgs, `${base}.ptt`], { cwd: work, encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`pttc ${base}.ptt: ${(res.stderr || res.stdout).trim()}`);
    const produced = res.stdout.split(/\s+/).filter((f) => f !== '');
    const sbFiles = produced.filter((f) => f.endsWith('.sb'));
    const hasPtxed = produced.some((f) => /-ptxed(-cpu_[0-9_]+)?\.exp$/.test(f));
    const sb = sbFiles.flatMap((f) => sidebandArgs(f, base));
    const pt = `${base}.pt`;
    const bin = `${base}.bin`;
    const org = orgOf(text);

    const ptdumpArgv = [...cpuArgs, ...words(annotations(text, 'opt:ptdump')), ...sb, pt];
    const files = new Map<string, Buffer>();
    files.set(pt, readFileSync(join(work, pt)));
    for (const f of sbFiles) files.set(f, readFileSync(join(work, f)));
    const ptdumpExp = `${base}-ptdump${suffix}.exp`;
    files.set(ptdumpExp, Buffer.from(run(join(tools, 'ptdump'), ptdumpArgv, work)));

    let ptxed: ManifestEntry['ptxed'] = null;
    const images: ManifestEntry['images'] = [];
    if (hasPtxed) {
      files.set(bin, readFileSync(join(work, bin)));
      images.push({ file: bin, address: org });
      const argv = ['--raw', `${bin}:${org}`, ...cpuArgs, ...words(annotations(text, 'opt:ptxed')), '--no-inst', '--check', '--pt', pt, ...sb];
      const exp = `${base}-ptxed${suffix}.exp`;
      files.set(exp, Buffer.from(run(join(tools, 'ptxed'), argv, work)));
      ptxed = { exp, argv };
    }
    const entry: ManifestEntry = {
      name: cpu ? `${base}@cpu_${cpu.replace(/\//g, '_')}` : base,
      pt,
      images,
      cpu,
      sideband_args: sb,
      ptdump: { exp: ptdumpExp, argv: ptdumpArgv },
      ptxed,
      source: `test/conformance/ptt/${base}.ptt`,
    };
    return { entry, files };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Every case of one .ptt: one per `; cpu` line, or one without a CPU. */
export function generatePtt(pttPath: string, tools: string): GeneratedCase[] {
  const cpus = annotations(readFileSync(pttPath, 'utf8'), 'cpu').flatMap((c) => c.split(/\s+/));
  return (cpus.length ? cpus : [null]).map((cpu) => generateCase(pttPath, cpu, tools));
}

/** The .ptt files, by name. */
export function pttFiles(): string[] {
  return readdirSync(PTT_DIR).filter((f) => f.endsWith('.ptt')).sort().map((f) => join(PTT_DIR, f));
}

function main(argv: string[]): void {
  const tools = libiptTools();
  const only = new Set(argv);
  const manifestPath = join(VECTOR_DIR, 'MANIFEST.json');
  const old: ManifestEntry[] = existsSync(manifestPath) ? JSON.parse(readFileSync(manifestPath, 'utf8')) : [];
  const keep = old.filter((e) => only.size && !only.has(basename(e.source, '.ptt')));
  const entries = [...keep];
  for (const ptt of pttFiles()) {
    const base = basename(ptt, '.ptt');
    if (only.size && !only.has(base)) continue;
    for (const c of generatePtt(ptt, tools)) {
      const dir = join(VECTOR_DIR, c.entry.name);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      for (const [name, data] of c.files) writeFileSync(join(dir, name), data);
      entries.push(c.entry);
      console.log(`${c.entry.name}: ${[...c.files.keys()].join(' ')}`);
    }
  }
  // Folders of cases that no longer exist go.
  const names = new Set(entries.map((e) => e.name));
  for (const d of existsSync(VECTOR_DIR) ? readdirSync(VECTOR_DIR) : []) {
    if (d !== 'MANIFEST.json' && !names.has(d)) rmSync(join(VECTOR_DIR, d), { recursive: true, force: true });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  mkdirSync(VECTOR_DIR, { recursive: true });
  writeFileSync(manifestPath, JSON.stringify(entries, null, 1) + '\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main(process.argv.slice(2));
