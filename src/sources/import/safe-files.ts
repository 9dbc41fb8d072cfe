/**
 * File access for hostile inputs. A bundle, a trace or a perf.data may have
 * been crafted by the author of the program under analysis, so:
 * - every path a manifest names must resolve, after symlinks, inside the
 *   bundle directory (no `..`, no absolute paths, no links out);
 * - only regular files are read: a FIFO would hang, `/dev/zero` would grow
 *   without end;
 * - every read is bounded by a size limit.
 * Errors are one line, naming the field or file at fault.
 */
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, resolve, sep } from 'node:path';

/** An input that cannot be used: one line for the user. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** Limits on what an input may make ptscope read or build. */
export const INPUT_LIMITS = {
  /** manifest.json and other JSON inputs. */
  jsonBytes: 8 << 20,
  /** Image entries in one manifest. */
  images: 4096,
  /** Trace streams in one recording. */
  streams: 4096,
  /** Processes and threads in one manifest. */
  tasks: 65536,
  /** Core dumps a bundle keeps (one per crashed process). */
  cores: 16,
  /** One image file (a copy of a mapped file). */
  imageBytes: 2 ** 31,
};

function why(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'no such file';
  if (err.code === 'EACCES') return 'permission denied';
  if (err.code === 'ELOOP') return 'too many symbolic links';
  return err.code ?? err.message;
}

/**
 * The real path of `relative` inside directory `root`, which must contain
 * it after symlinks are resolved. `field` names the manifest field for the
 * error message; `within` names the directory (a bundle, a fleet's store).
 */
export function confinedPath(root: string, relative: unknown, field: string, within = 'bundle'): string {
  if (typeof relative !== 'string' || relative.length === 0) throw new InputError(`${field}: expected a file name inside the ${within}`);
  if (relative.includes('\0')) throw new InputError(`${field}: file name contains a NUL byte`);
  if (isAbsolute(relative)) throw new InputError(`${field}: '${relative}' is an absolute path; ${within} files must be inside the ${within}`);
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
  } catch (e) {
    throw new InputError(`${root}: ${why(e)}`);
  }
  let real: string;
  try {
    real = realpathSync(resolve(realRoot, relative));
  } catch (e) {
    throw new InputError(`${field}: '${relative}': ${why(e)}`);
  }
  if (real !== realRoot && !real.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep)) {
    throw new InputError(`${field}: '${relative}' resolves outside the ${within} directory`);
  }
  return real;
}

/** Throws unless `path` is a regular file; returns its size. */
export function regularFileSize(path: string, what: string): number {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new InputError(`${what}: ${why(e)}`);
  }
  if (st.isDirectory()) throw new InputError(`${what}: is a directory`);
  if (!st.isFile()) throw new InputError(`${what}: not a regular file (a FIFO, device or socket cannot be read as a trace)`);
  return st.size;
}

/**
 * Read a whole regular file of at most `maxBytes`. Opens without following
 * a final symlink and checks the opened file, so a swap between the check
 * and the read cannot substitute a device.
 */
export function readBoundedFile(path: string, maxBytes: number, what: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw new InputError(`${what}: ${why(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${what}: not a regular file`);
    if (st.size > maxBytes) throw new InputError(`${what}: ${st.size} bytes is more than the limit of ${maxBytes}`);
    const buf = Buffer.alloc(st.size);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, done);
      if (n <= 0) break;
      done += n;
    }
    return done === buf.length ? buf : buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}
