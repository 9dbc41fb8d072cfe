/**
 * Getting a core for a recorder bundle that has none: the recorded program
 * is re-run once under qemu-x86_64 and qemu's core of the guest is kept as
 * `<bundle>/core`.
 *
 * The re-run is confined exactly like `ptscope record` unless the analyst
 * passed --no-sandbox to this command: the bundle never decides that. What
 * runs is the bundle's own copy of the program, shown at the recorded path
 * with the recorded arguments (rerun-program.ts); qemu-user places the
 * guest deterministically and the sandbox's working directory and
 * environment are the recorder's, so the same inputs give the same
 * addresses.
 *
 * A re-run is a second execution, not the recorded one: the crash analysis
 * checks the core against the trace (the final IP, the code bytes of every
 * image) and says so when they do not match.
 */
import { closeSync, constants, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { importBundle } from '../../sources/import/bundle-import.js';
import { ConfinedRun } from '../../sources/recorder/confined-run.js';
import { DEFAULT_LIMITS } from '../../sources/recorder/resource-limits.js';
import { prepareRerun } from '../rerun-setup.js';

export const BUNDLE_CORE_NAME = 'core';

export interface CaptureOptions {
  timeoutSec?: number;
  /** Confine the re-run (default true); false only from the analyst's --no-sandbox. */
  sandbox?: boolean;
}

/** Write `<bundle>/core` by re-running the program; returns its path, or throws with one line. */
export function captureCore(bundle: string, options: CaptureOptions = {}): string {
  const sandbox = options.sandbox !== false;
  const recording = importBundle(bundle);
  if (recording.exit?.signal == null) throw new Error(`${bundle}: the recorded program did not die of a signal`);
  const { program, qemu } = prepareRerun(recording, sandbox, 're-run the program for a core');
  const run = new ConfinedRun({
    command: [qemu, ...program.argv],
    sandbox,
    view: { programCopy: { host: program.host, guest: program.guest } },
    limits: DEFAULT_LIMITS,
    output: 'ignore',
    collect: { core: true },
    timeoutSec: options.timeoutSec ?? 60,
  });
  try {
    const res = run.runSync();
    const core = [...res.files].find(([name]) => /\/qemu_[^/]*\.core$/.test(name));
    if (core === undefined) {
      throw new Error(`re-running ${program.guest} left no core dump (${res.timedOut ? 'it timed out' : 'it did not crash again'})`);
    }
    const out = join(bundle, BUNDLE_CORE_NAME);
    if (existsSync(out)) throw new Error(`${out} exists already`);
    // Never through a link planted in the bundle.
    const fd = openSync(out, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try {
      let done = 0;
      while (done < core[1].length) done += writeSync(fd, core[1], done, core[1].length - done);
    } finally {
      closeSync(fd);
    }
    return out;
  } finally {
    run.dispose();
  }
}

/** The bundle's core file, if it has one. */
export function bundleCore(bundle: string): string | null {
  const p = join(bundle, BUNDLE_CORE_NAME);
  return existsSync(p) ? p : null;
}
