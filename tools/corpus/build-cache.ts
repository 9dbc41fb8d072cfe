/**
 * Corpus builds and recordings cached by content, for the crash and
 * dormant corpora (tools/eval-crashes*.ts, tools/eval-dormant-corpus.ts)
 * and the tests that use them. A product is rebuilt when its key (a hash
 * of everything it is made from: the compiler's version, its arguments,
 * the bytes of its inputs) differs from the key stored beside it, never
 * because of modification times, so a fresh checkout, a switched branch or
 * a touched file costs nothing when the content is the same.
 *
 * Writes are atomic: each product is made under a name of its own (the
 * process id) and renamed into place, so test files running at once in
 * separate processes (vitest runs two) never read a half-written binary or
 * bundle, and the last to finish simply replaces an identical product.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

let compilerVersion: string | null = null;

/** The first line of `gcc --version` (a compiler upgrade rebuilds everything). */
function gccVersion(): string {
  if (compilerVersion === null) {
    const r = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error('gcc --version failed: is gcc installed? (scripts/install-test-deps.sh)');
    compilerVersion = r.stdout.split('\n')[0]!;
  }
  return compilerVersion;
}

/** A key for `parts`: strings as they are, files by their bytes. */
export function contentKey(parts: readonly (string | { file: string })[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    if (typeof p === 'string') h.update(`s${p.length}:`).update(p);
    else {
      const bytes = readFileSync(p.file);
      h.update(`f${bytes.length}:`).update(bytes);
    }
  }
  return h.digest('hex').slice(0, 32);
}

/**
 * A key for the recorder's code (every source file under `dir`, the
 * repository's src/sources/recorder): a changed recorder records again.
 */
export function codeKey(dir: string): string {
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') || f.endsWith('.js'))
    .sort();
  return contentKey(files.flatMap((f) => [f, { file: join(dir, f) }]));
}

/** A name for this process's copy of `path` while it is being made. */
function privateName(path: string): string {
  return `${path}.${process.pid}.tmp`;
}

/** Write `data` to `path` in one rename. */
export function writeAtomically(path: string, data: string | Uint8Array): void {
  const tmp = privateName(path);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function storedKey(keyFile: string): string | null {
  try {
    return readFileSync(keyFile, 'utf8');
  } catch {
    return null;
  }
}

/**
 * `gcc ...args -o out` unless `out` was made from the same compiler,
 * arguments and `inputs` (every file the build reads: sources, headers,
 * libraries it links). Returns whether it compiled.
 */
export function cachedGcc(out: string, args: readonly string[], inputs: readonly string[], what = out): boolean {
  const keyFile = `${out}.key`;
  const key = contentKey([gccVersion(), ...args, ...inputs.map((file) => ({ file }))]);
  if (existsSync(out) && storedKey(keyFile) === key) return false;
  const tmp = privateName(out);
  const r = spawnSync('gcc', [...args, '-o', tmp], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`gcc ${what}: ${r.stderr.split('\n').find((l) => l.includes('error')) ?? r.stderr.split('\n')[0]}`);
  }
  renameSync(tmp, out);
  writeAtomically(keyFile, key);
  return true;
}

/** The key file a cached bundle carries (the recorder writes no file of this name). */
const BUNDLE_KEY = 'corpus-cache-key';

/**
 * The bundle `bundle`, recorded by `make(output)` unless a bundle with
 * `key` is there already. `make` records into the path it is given; the
 * result is renamed into place whole.
 */
export async function cachedBundle(bundle: string, key: string, make: (output: string) => Promise<unknown>): Promise<boolean> {
  if (storedKey(`${bundle}/${BUNDLE_KEY}`) === key && existsSync(`${bundle}/manifest.json`)) return false;
  const tmp = privateName(bundle);
  rmSync(tmp, { recursive: true, force: true });
  try {
    await make(tmp);
    writeFileSync(`${tmp}/${BUNDLE_KEY}`, key);
    rmSync(bundle, { recursive: true, force: true });
    try {
      renameSync(tmp, bundle);
    } catch (e) {
      // Another process put its bundle there between the two calls: the same recording, keep it.
      if (storedKey(`${bundle}/${BUNDLE_KEY}`) !== key) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return true;
}
