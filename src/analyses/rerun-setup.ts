/**
 * What a re-run of a recorded program under qemu-x86_64 needs before it
 * starts (crash's core capture, dormant's shim runs): the program from the
 * recording, qemu on the PATH and, when confined, a sandbox that works.
 * Each missing piece is one line.
 */
import type { Recording } from '../sources/model/recording.js';
import { findOnPath } from '../sources/recorder/record.js';
import { rerunProgram, type RerunProgram } from '../sources/recorder/rerun-program.js';
import { sandboxUnavailable } from '../sources/recorder/sandbox.js';

export function prepareRerun(r: Recording, sandbox: boolean, purpose: string): { program: RerunProgram; qemu: string } {
  const program = rerunProgram(r, sandbox);
  const qemu = findOnPath('qemu-x86_64');
  if (qemu === null) throw new Error(`qemu-x86_64 not found: install qemu-user to ${purpose}`);
  if (sandbox) {
    const why = sandboxUnavailable();
    if (why !== null) throw new Error(`cannot re-run the program confined: ${why} (--no-sandbox runs it unconfined)`);
  }
  return { program, qemu };
}
