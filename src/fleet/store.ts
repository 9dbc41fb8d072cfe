/**
 * The store: the directory tree that every machine of a fleet shares (an
 * NFS or other shared mount, given by `--store DIR`), holding the programs
 * to record, the bundles and the reports.
 *
 * A job names files only by paths relative to the store root, never by an
 * absolute path from some machine. Every path a job carries is hostile:
 * - no absolute path, no `..` component, no NUL;
 * - an existing file must resolve, after symlinks, inside the root
 *   (safe-files.ts {@link confinedPath});
 * - a file a job creates gets a parent inside the root, and is never an
 *   existing symlink (which would redirect the write).
 *
 * A worker runs with the store root as its working directory, so the
 * checked relative paths are what it hands to the importers and the
 * recorder, and messages name files as every machine knows them.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { confinedPath, InputError } from '../sources/import/safe-files.js';

/** Longest store-relative path a job may carry. */
const MAX_PATH = 1024;

export class Store {
  /** The root, symlinks resolved. */
  readonly root: string;

  constructor(dir: string) {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      throw new InputError(`--store ${dir}: no such directory`);
    }
    if (!statSync(real).isDirectory()) throw new InputError(`--store ${dir}: not a directory`);
    this.root = real;
  }

  /** The checked, normalised form of a job's path (not yet resolved on disk). */
  private syntax(rel: unknown, field: string): string {
    if (typeof rel !== 'string' || rel.length === 0) throw new InputError(`${field}: expected a path inside the store`);
    if (rel.length > MAX_PATH) throw new InputError(`${field}: path longer than ${MAX_PATH} characters`);
    if (rel.includes('\0')) throw new InputError(`${field}: path contains a NUL byte`);
    if (isAbsolute(rel)) throw new InputError(`${field}: '${rel}' is an absolute path; jobs name files relative to the store`);
    if (rel.split(/[/\\]/).includes('..')) throw new InputError(`${field}: '${rel}' contains '..'; jobs name files inside the store`);
    const norm = normalize(rel).replace(/\/+$/, '');
    if (norm === '.' || norm === '') throw new InputError(`${field}: '${rel}' names the store root itself`);
    return norm;
  }

  /** An existing file or directory a job reads: its store-relative path, checked. */
  input(rel: unknown, field: string): string {
    const norm = this.syntax(rel, field);
    confinedPath(this.root, norm, field, 'store');
    return norm;
  }

  /**
   * A file or directory a job creates: its store-relative path. Missing
   * parent directories are created (inside the root); an existing symlink
   * at the path is refused.
   */
  output(rel: unknown, field: string): string {
    const norm = this.syntax(rel, field);
    // The deepest existing ancestor must be inside the root; the rest is made here.
    let parent = dirname(norm);
    const missing: string[] = [];
    while (parent !== '.' && !exists(join(this.root, parent))) {
      missing.unshift(parent);
      parent = dirname(parent);
    }
    if (parent !== '.') confinedPath(this.root, parent, field, 'store');
    for (const dir of missing) {
      try {
        mkdirSync(join(this.root, dir));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new InputError(`${field}: cannot create '${dir}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      confinedPath(this.root, dir, field, 'store');
    }
    let st;
    try {
      st = lstatSync(join(this.root, norm));
    } catch {
      return norm;
    }
    if (st.isSymbolicLink()) throw new InputError(`${field}: '${norm}' is a symbolic link; a job never writes through one`);
    return norm;
  }

  /**
   * Write a file a job creates, whole or not at all: into a fresh temporary
   * name (never through an existing file or link), then renamed into place,
   * so a retried job replaces its own output and a reader never sees half.
   */
  writeFile(rel: unknown, data: string | Uint8Array, field: string): string {
    const norm = this.output(rel, field);
    const target = join(this.root, norm);
    const temp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      writeFileSync(temp, data, { flag: 'wx', mode: 0o644 });
      renameSync(temp, target);
    } catch (e) {
      rmSync(temp, { force: true });
      throw new InputError(`${field}: cannot write '${norm}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return norm;
  }

  /** A path on this machine as the store-relative path a job carries (for `submit`). */
  relativeOf(localPath: string, what: string): string {
    const abs = resolve(localPath);
    // Not there yet (an output): resolve its deepest existing ancestor.
    let existing = abs;
    let rest = '';
    let real: string | null = null;
    while (real === null) {
      try {
        real = join(realpathSync(existing), rest);
      } catch {
        const up = dirname(existing);
        if (up === existing) throw new InputError(`${what} ${localPath}: no such file or directory`);
        rest = join(basename(existing), rest);
        existing = up;
      }
    }
    const rel = relative(this.root, real);
    if (rel === '' || rel.startsWith('..' + sep) || rel === '..' || isAbsolute(rel)) {
      throw new InputError(`${what} ${localPath} is not inside the store ${this.root}: workers read only the store, so copy it there first`);
    }
    return rel;
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
