/**
 * What a recorded program is shown and run as, for both recorders (the
 * emulated one and perf's): its path and argv as it sees them, and the
 * sandbox's view (sandbox-view.ts) of the analyst's command line and
 * --allow-read paths. Under the sandbox, bwrap must work here and the
 * program's loader must be in the view; unconfined, the analyst is warned.
 */
import { resolve } from 'node:path';
import type { ElfFile } from '../../flow/elf.js';
import { interpreterOf } from './memory-map.js';
import { argumentPaths, RecordError, showable } from './record-support.js';
import type { RecordOptions } from './record-options.js';
import { sandboxUnavailable } from './sandbox.js';
import { sandboxView, visibleHostFile, type ViewRequest } from './sandbox-view.js';

export interface ConfinementRequest {
  /** The program's path as it sees it. */
  guestProgram: string;
  /** Its argv as it sees it. */
  guestArgv: string[];
  /** What the sandbox shows besides the system (ptscope's own helpers are the caller's to add). */
  view: ViewRequest;
}

export function confinementRequest(opts: RecordOptions, program: string, exe: { bytes: Buffer; elf: ElfFile }, notice: (line: string) => void): ConfinementRequest {
  const guestProgram = opts.program?.guest ?? program;
  const args = argumentPaths(opts.argv, opts.exposeArguments !== false);
  const allowRead: string[] = [];
  for (const p of opts.allowRead ?? []) {
    const kind = showable(p);
    if (kind === 'yes') allowRead.push(resolve(p));
    else throw new RecordError(`record: --allow-read ${p}: ${kind === 'missing' ? 'no such file or directory' : `${kind}, which is never shown to the sandbox`}`);
  }
  for (const r of args.refused) notice(r);
  if (opts.sandbox) {
    const why = sandboxUnavailable();
    if (why !== null) throw new RecordError(`record: ${why}; install bubblewrap, or pass --no-sandbox to run the program unconfined`);
    // The loader must be in the sandbox's view, or the program cannot start there.
    const interp = interpreterOf(exe.elf, exe.bytes);
    const probe = sandboxView({ program: opts.program ? undefined : program, arguments: args.paths, allowRead });
    if (interp !== null && visibleHostFile(probe, interp) === null) {
      throw new RecordError(`record: the program's loader ${interp} is outside the sandbox's view (system directories, the program, its arguments); pass --allow-read ${interp}`);
    }
  } else {
    notice('warning: --no-sandbox: the program runs unconfined, with your network and files');
  }
  return {
    guestProgram,
    guestArgv: [guestProgram, ...args.argv.slice(1)],
    view: { program: opts.program ? undefined : program, programCopy: opts.program, libraryCopies: opts.program?.libraries, arguments: args.paths, allowRead },
  };
}
