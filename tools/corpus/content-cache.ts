/**
 * Corpus builds and recordings cached by content, for the crash, dormant
 * and exploit corpora (tools/eval-crashes*.ts, tools/eval-dormant-corpus.ts,
 * tools/eval-detectors.ts) and the tests that use them. A product is made
 * again when its key (a hash of everything it is made from: the compiler's
 * version, its arguments, the bytes of its inputs, the recorder's code)
 * differs from the key stored with it, never because of modification
 * times, so a fresh checkout, a switched branch or a touched file costs
 * nothing when the content is the same.
 *
 * Writes are atomic: each product is made under a name of its own (the
 * process id) and renamed into place, so test files running at once in
 * separate processes (vitest runs two) never read a half-written binary or
 * recording. A recording is made under a lock file besides: the other
 * processes wait for it rather than record the same thing again.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

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
 * A key for the code a recording is made by: every source file (.ts, .js,
 * .c) under each of `dirs` (e.g. the repository's src/sources/recorder),
 * by its name below its directory and its bytes. Changed code records again.
 */
export function codeKey(...dirs: string[]): string {
  return contentKey(
    dirs.flatMap((dir, i) =>
      readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .filter((f) => /\.(ts|js|c)$/.test(f))
        .sort()
        .flatMap((f) => [`${i}/${f}`, { file: join(dir, f) }]),
    ),
  );
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

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
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
  if (existsSync(out) && readOrNull(keyFile) === key) return false;
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

/** The key file a cached directory carries (neither the recorder nor a caller writes a file of this name). */
const DIRECTORY_KEY = 'corpus-cache-key';

/**
 * The directory `dir` (a bundle, or a directory of recordings), made by
 * `make(path)` unless it holds `key` already. `make` creates and fills the
 * path it is given; the result, with its key, is renamed into place whole.
 * One process makes it under the lock file `<dir>.lock` while the others
 * wait, then find it made. Returns whether this call made it.
 */
export async function cachedDirectory(dir: string, key: string, make: (path: string) => Promise<unknown>): Promise<boolean> {
  const made = (): boolean => readOrNull(join(dir, DIRECTORY_KEY)) === key;
  mkdirSync(dirname(dir), { recursive: true });
  const release = await takeLock(`${dir}.lock`, made);
  if (release === null) return false;
  const tmp = privateName(dir);
  try {
    rmSync(tmp, { recursive: true, force: true });
    await make(tmp);
    writeFileSync(join(tmp, DIRECTORY_KEY), key);
    rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another process that took over a lock it thought abandoned put the same directory there first: keep it.
      if (!made()) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    release();
  }
  return true;
}

/**
 * Take the lock file `lock`; null when `done()` became true meanwhile (so
 * there is nothing left to do). A lock whose process is gone is taken over.
 */
async function takeLock(lock: string, done: () => boolean): Promise<(() => void) | null> {
  for (;;) {
    if (done()) return null;
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      if (done()) {
        rmSync(lock, { force: true });
        return null;
      }
      return () => rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = Number(readOrNull(lock));
    if (!(owner > 0) || !processAlive(owner)) {
      rmSync(lock, { force: true });
      continue;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
