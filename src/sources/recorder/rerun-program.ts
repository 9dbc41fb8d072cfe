/**
 * What a re-run of a recording executes (the crash analysis's core capture,
 * the dormant-code snapshot, patched run and re-recording). A bundle is
 * hostile, so nothing in it chooses a host file to execute or to show:
 *
 * - the program is the bundle's own copy of the executable (the image whose
 *   original path is the recorded program), never the host file at the
 *   recorded path;
 * - confined, that copy is shown to the program at the recorded path (so
 *   that its stack and layout match the recording), which must be a plain
 *   absolute path outside the sandbox's own /proc, /dev and /sys;
 *   unconfined, it runs from the bundle, at the bundle's path;
 * - the recorded arguments are passed as strings, bounded in number and
 *   size: a file they name is not shown to the sandbox;
 * - whether it runs confined is the caller's parameter, from the analyst's
 *   command line only.
 */
import { resolve } from 'node:path';
import type { Recording } from '../model/recording.js';
import { isSystemPath } from './sandbox-view.js';

export interface RerunProgram {
  /** The file executed: the bundle's copy of the program. */
  host: string;
  /** The path the program is shown at (and gets as its name). */
  guest: string;
  /** Its arguments, argv[0] included (argv[0] is `guest`). */
  argv: string[];
  /**
   * The bundle's copies of the program's own shared libraries (images the
   * recording mapped from outside the system directories), each to be shown
   * at its recorded path: what the program's DT_RUNPATH ($ORIGIN) found.
   */
  libraries: { host: string; guest: string }[];
}

const MAX_ARGS = 4096;
const MAX_ARG_BYTES = 1 << 20;

function checkGuestPath(p: string): string | null {
  if (p.length === 0 || p.length > 4096 || p.includes('\0')) return 'not a usable path';
  if (!p.startsWith('/') || resolve(p) !== p || p === '/') return 'not a plain absolute path';
  if (p.split('/').some((c) => c.length > 255)) return 'a path component is longer than 255 bytes';
  for (const own of ['/proc', '/dev', '/sys']) if (p === own || p.startsWith(`${own}/`)) return `inside the sandbox's own ${own}`;
  return null;
}

/** The program to re-run, or throws one line saying why the recording cannot be re-run. */
export function rerunProgram(r: Recording, sandbox: boolean): RerunProgram {
  const prog = r.program;
  if (prog === null) throw new Error('the recording does not say which program ran: nothing to re-run');
  if (r.recorder !== 'qemu') throw new Error('only emulated (qemu) recordings can be re-run');
  const bad = checkGuestPath(prog.path);
  if (bad !== null) throw new Error(`program.path: ${bad}: cannot re-run it`);
  const copy = r.streams.flatMap((s) => s.mappings).find((m) => m.originalPath === prog.path && m.runtime === null);
  if (copy === undefined) throw new Error(`the bundle has no copy of its program ${prog.path}: cannot re-run it`);
  if (prog.argv.length > MAX_ARGS) throw new Error(`program.argv: more than ${MAX_ARGS} arguments`);
  let bytes = 0;
  for (const a of prog.argv) {
    if (a.includes('\0')) throw new Error('program.argv: an argument contains a NUL byte');
    bytes += Buffer.byteLength(a) + 1;
  }
  if (bytes > MAX_ARG_BYTES) throw new Error(`program.argv: more than ${MAX_ARG_BYTES} bytes of arguments`);
  const guest = sandbox ? prog.path : copy.file;
  const libraries: RerunProgram['libraries'] = [];
  for (const m of r.streams.flatMap((s) => s.mappings)) {
    if (m.runtime !== null || m.originalPath === prog.path || isSystemPath(m.originalPath) || checkGuestPath(m.originalPath) !== null) continue;
    if (!libraries.some((l) => l.guest === m.originalPath)) libraries.push({ host: m.file, guest: m.originalPath });
  }
  return { host: copy.file, guest, argv: [guest, ...prog.argv.slice(1)], libraries };
}
