/**
 * The files a recorded program mapped as code, read as the program saw
 * them. A path in the emulator's log is the program's (hostile) word:
 *
 * - confined, it is read on the host only if the sandbox showed that same
 *   host file (sandbox-view.ts `visibleHostFile`); a file the program wrote
 *   itself (in its private /tmp) comes from what the run handed out when it
 *   ended (confined-run.ts), never from the host path of the same name;
 * - unconfined (--no-sandbox), the program saw the host, and its paths are
 *   read on the host.
 *
 * Every read is of a regular file, not through a final symlink, and bounded
 * (the size of one image, and a total for the recording).
 */
import { realpathSync } from 'node:fs';
import { readBoundedFile, INPUT_LIMITS } from '../import/safe-files.js';
import { visibleHostFile, type SandboxView } from './sandbox-view.js';

const ELF_MAGIC = 0x7f454c46;

export class GuestFiles {
  /** Files read from the host (null: refused), by the program's path. */
  private readonly cache = new Map<string, Buffer | null>();
  /** The host file the sandbox showed at a path (null: none), by the program's path. */
  private readonly hostPaths = new Map<string, string | null>();
  private readonly made = new Map<string, Buffer>();
  private total = 0;
  /** Paths that could not be read, with why (for the recording's warnings). */
  readonly refused = new Map<string, string>();

  constructor(
    /** The sandbox's view, or null for an unconfined run. */
    private readonly view: SandboxView | null,
    /** Bytes of all files read together. */
    private readonly maxTotal: number,
  ) {}

  /** The ELF files the program left behind (the run's handed-out files). */
  addMade(files: ReadonlyMap<string, Buffer>): void {
    for (const [path, bytes] of files) {
      if (bytes.length >= 4 && bytes.readUInt32BE(0) === ELF_MAGIC) this.made.set(path, bytes);
    }
  }

  /** The host file the program saw at `path`, or null (confined: not a file of the view). */
  private hostPath(path: string): string | null {
    let host = this.hostPaths.get(path);
    if (host === undefined) {
      host = this.view !== null ? visibleHostFile(this.view, path) : unconfinedFile(path);
      this.hostPaths.set(path, host);
    }
    return host;
  }

  /** True if the bytes of `path` are the program's own making (not a file the host showed it). */
  isMadeByProgram(path: string): boolean {
    return this.hostPath(path) === null && this.made.has(path);
  }

  /** The file's bytes, or null when it is not one the program saw as a host file or a file it made. */
  read(path: string): Buffer | null {
    const hit = this.cache.get(path);
    if (hit !== undefined) return hit;
    const host = this.hostPath(path);
    if (host === null) {
      const own = this.made.get(path);
      if (own === undefined) this.refused.set(path, 'not a file of the sandbox view, and not left by the program');
      return own ?? null;
    }
    let bytes: Buffer | null = null;
    try {
      bytes = readBoundedFile(host, INPUT_LIMITS.imageBytes, path);
      if (this.total + bytes.length > this.maxTotal) {
        this.refused.set(path, `the recorder's limit of ${this.maxTotal} bytes of image files is reached`);
        bytes = null;
      } else {
        this.total += bytes.length;
      }
    } catch (e) {
      this.refused.set(path, (e as Error).message);
    }
    this.cache.set(path, bytes);
    return bytes;
  }
}

/**
 * The file an unconfined program opened at `path`: the host's own, through
 * its symbolic links (the loader is /lib64/ld-linux-x86-64.so.2, a link on
 * Debian). The program saw the same view; the read itself follows none.
 */
function unconfinedFile(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    // Gone since: the read says why.
    return path;
  }
}
