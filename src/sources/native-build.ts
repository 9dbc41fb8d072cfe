/**
 * ptscope's few native helpers (native/*.c: the dormant-code shim, the
 * emulator's log shim, the exec follower) are built here with gcc on first use and cached per
 * user, keyed by the hash of their source, outside the (possibly read-only)
 * package.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (holds package.json and native/), from this file's place in src/ or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('this copy of ptscope has no native/ directory: reinstall the package');
}

/** Where built helpers are cached: per user, outside the package. */
function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || (homedir() ? join(homedir(), '.cache') : tmpdir());
  return join(base, 'ptscope');
}

/**
 * Build native/`name`.c into a shared object (or reuse the cached build of
 * the same source and headers). `headers` are generated include files
 * (file name -> text). Throws with gcc's first message line; `what` names
 * the helper in messages.
 */
export function buildNativeShim(name: string, what: string, headers: Readonly<Record<string, string>> = {}): string {
  return buildNative(name, what, 'shared', headers);
}

/** Build native/`name`.c into a program (cached like {@link buildNativeShim}). */
export function buildNativeProgram(name: string, what: string): string {
  return buildNative(name, what, 'program', {});
}

function buildNative(name: string, what: string, kind: 'shared' | 'program', headers: Readonly<Record<string, string>>): string {
  const source = join(packageRoot(), 'native', `${name}.c`);
  if (!existsSync(source)) throw new Error(`this copy of ptscope has no native/${name}.c: reinstall the package`);
  const hash = createHash('sha1').update(readFileSync(source));
  for (const [file, text] of Object.entries(headers)) hash.update(file).update(text);
  const out = join(cacheDir(), `${name}-${hash.digest('hex').slice(0, 12)}${kind === 'shared' ? '.so' : ''}`);
  if (existsSync(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const include = mkdtempSync(join(tmpdir(), 'ptscope-shim-'));
  for (const [file, text] of Object.entries(headers)) writeFileSync(join(include, file), text);
  let res;
  try {
    const flags = kind === 'shared' ? ['-shared', '-fPIC', '-O2'] : ['-O2'];
    res = spawnSync('gcc', [...flags, '-I', include, '-o', tmp, source, ...(kind === 'shared' ? ['-ldl'] : [])], { encoding: 'utf8' });
  } finally {
    rmSync(include, { recursive: true, force: true });
  }
  if (res.error) throw new Error(`cannot run gcc (needed to build the ${what}): ${res.error.message}`);
  if (res.status !== 0) throw new Error(`gcc failed on the ${what}: ${res.stderr.trim().split('\n')[0]}`);
  renameSync(tmp, out);
  return out;
}
