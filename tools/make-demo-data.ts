/**
 * Regenerates demo/ (the sample recordings `ptscope demo` analyses):
 * builds the exploit corpus (tools/corpus/build-exploits.ts; skipped when
 * up to date), records the rop_stack case's exploit and benign runs with
 * the emulated recorder (what `ptscope record` runs) and writes
 * demo/demo.json. Samples of kind "dormant" already listed in demo.json
 * (added by `ptscope dormant`'s sample tool) are kept.
 *
 *   npm run build && node dist/tools/make-demo-data.js [--corpus DIR] [--out DIR]
 *
 * Needs gcc, qemu-user and bubblewrap (scripts/install-test-deps.sh);
 * `ptscope demo` itself needs none of them.
 *
 * The corpus programs read their input on stdin, which `ptscope record`
 * takes as `--stdin`: recordWithStdin (tools/eval-detectors.ts) gives the
 * recorded program its input file.
 *
 * Absolute paths of this checkout in the manifests are made relative to
 * the repository, so the shipped bundles do not name the machine they were
 * made on.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { DemoIndex, DemoSample } from '../src/cli/demo.js';
import { recordWithStdin } from './eval-detectors.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), existsSync(resolve(dirname(fileURLToPath(import.meta.url)), '../package.json')) ? '..' : '../..');

/** The corpus cases the demo ships, with what a newcomer should read about them. */
const CASES: { name: string; about: string; exploitInput: string }[] = [
  {
    name: 'rop_stack',
    about: 'A static program copies its stdin into a 64-byte stack buffer without a length check.',
    exploitInput: '72 bytes of padding, then 8 gadget addresses: write(1, "PWNED\\n", 6) and exit(0) by system calls',
  },
];

function relativize(file: string): void {
  const text = readFileSync(file, 'utf8');
  const root = ROOT.endsWith('/') ? ROOT : ROOT + '/';
  writeFileSync(file, text.split(JSON.stringify(root).slice(1, -1)).join(''));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let corpus = join(ROOT, 'build/corpus/exploits');
  let out = join(ROOT, 'demo');
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--corpus') corpus = resolve(args[++i]);
    else if (args[i] === '--out') out = resolve(args[++i]);
    else throw new Error(`unknown argument ${args[i]}`);
  }
  const builder = join(ROOT, 'dist/tools/corpus/build-exploits.js');
  execFileSync(process.execPath, [builder, '--out', corpus], { stdio: 'inherit', cwd: ROOT });
  mkdirSync(out, { recursive: true });

  let kept: DemoSample[] = [];
  const indexPath = join(out, 'demo.json');
  if (existsSync(indexPath)) {
    const old = JSON.parse(readFileSync(indexPath, 'utf8')) as DemoIndex;
    kept = old.samples.filter((s) => s.kind === 'dormant');
  }

  const samples: DemoSample[] = [];
  for (const c of CASES) {
    const dir = join(corpus, c.name);
    const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    const prog = resolve(dir, run.program);
    for (const kind of ['exploit', 'benign'] as const) {
      const bundle = `${c.name}.${kind}`;
      const input = kind === 'exploit' ? run.exploit.runners?.qemu?.stdin ?? run.exploit.stdin : run.benign.stdin;
      const target = join(out, bundle);
      rmSync(target, { recursive: true, force: true });
      const stdout = await recordWithStdin([prog, ...run.argv], target, join(dir, input));
      const pwned = stdout.split('\n').includes('PWNED');
      if (pwned !== (kind === 'exploit')) throw new Error(`${bundle}: the ${kind} run printed ${JSON.stringify(stdout)}`);
      relativize(join(target, 'manifest.json'));
      const size = readFileSync(join(dir, input)).length;
      samples.push({
        bundle,
        title: `${c.name}: ${kind === 'exploit' ? 'the exploit' : 'a benign run'}`,
        about: kind === 'exploit' ? `${c.about} The input overflows it: ${c.exploitInput}.` : `${c.about} Here the input is a short name, as intended.`,
        command: `prog < ${input}  (${size} bytes)`,
        kind,
      });
      console.log(`${bundle}: recorded (${kind === 'exploit' ? 'exploit worked' : 'benign output'})`);
    }
  }
  const index: DemoIndex = { format: 'ptscope-demo', version: 1, samples: [...samples, ...kept] };
  writeFileSync(indexPath, JSON.stringify(index, null, 2) + '\n');
  console.log(`${indexPath}: ${index.samples.length} samples`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`make-demo-data: ${(e as Error).message}`);
    process.exitCode = 2;
  });
}
