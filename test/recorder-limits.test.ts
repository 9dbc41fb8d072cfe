/**
 * The recorder under a hostile program's resource attacks (SECURITY.md,
 * "Limits"): the writable places are small tmpfs mounts, the trace and the
 * recorder's own memory have limits that stop the recording with a reason
 * and a valid trace, and the emulator's core is read only as a bounded
 * regular file (a FIFO or a link to /dev/zero named like a core neither
 * hangs the recorder nor makes it read without end).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreFile, CoreFileError } from '../src/sources/core-file.js';
import { readManifest } from '../src/sources/recorder/bundle.js';
import { SCRATCH_DIR } from '../src/sources/recorder/sandbox.js';
import { runOracle } from './helpers/oracle.js';
import { buildProbe, line, recordProbe } from './helpers/probe.js';

let work: string;
let probe: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-limits-test-'));
  probe = buildProbe(work);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function expectDecodes(bundle: string): void {
  const m = readManifest(bundle);
  const text = runOracle(m.decode!.ptoracle, bundle);
  expect(Number(/^insn (\d+)$/m.exec(text)![1])).toBe(m.instructions!.traced);
  expect(/^fnv1a64 ([0-9a-f]{16})$/m.exec(text)![1]).toBe(m.instructions!.fnv1a64);
}

const MIB = 1 << 20;

describe('the writable places are bounded', () => {
  it('the scratch directory and /tmp: a program filling them stops at the size limit', async () => {
    const res = await recordProbe(work, [probe, 'fill', SCRATCH_DIR, '64'], { limits: { tmpBytes: 4 * MIB } });
    expect(res.manifest.exit.status).toBe(0);
    const m = /^fill (\d+) MiB (.*)$/m.exec(res.stdout);
    expect(m, res.stdout).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(4);
    expect(m![2]).toMatch(/No space left on device|File too large/);
  });

  it('/dev/shm: the same', async () => {
    const res = await recordProbe(work, [probe, 'fill', '/dev/shm', '64'], { limits: { shmBytes: 2 * MIB } });
    const m = /^fill (\d+) MiB (.*)$/m.exec(res.stdout);
    expect(m, res.stdout).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(2);
    expect(m![2]).toBe('No space left on device');
  });
});

describe('the recording stops at its limits, keeping a valid trace', () => {
  it('--max-trace-size: stopped "trace-size" near the limit', async () => {
    const max = 64 * 1024;
    const res = await recordProbe(work, [probe, 'spin', '100000000'], { maxTraceBytes: max });
    const m = res.manifest;
    expect(m.exit.stopped).toBe('trace-size');
    expect(m.trace!.bytes).toBeGreaterThanOrEqual(max);
    expect(m.trace!.bytes).toBeLessThan(max + 1024);
    expect(m.warnings.join('\n')).toMatch(/recording stopped: the trace reached --max-trace-size/);
    expectDecodes(res.bundle);
  });

  it('the recorder\'s own memory: a program that makes endless new code stops it with "recorder-memory"', async () => {
    const res = await recordProbe(work, [probe, 'jit', '60000'], { maxRecorderBytes: 4 * MIB });
    expect(res.manifest.exit.stopped).toBe('recorder-memory');
    expect(res.manifest.warnings.join('\n')).toMatch(/the recorder's memory limit/);
    // The generated code is in no file: the bundle keeps it as a run-time image, so the trace up to the stop decodes exactly.
    expect(res.manifest.images.filter((im) => im.runtime != null)).toHaveLength(1);
    expect(res.manifest.warnings.join('\n')).not.toMatch(/no image maps/);
    expectDecodes(res.bundle);
  });
});

describe('target-made core files', () => {
  it('a FIFO and a link to /dev/zero named like qemu\'s core are not read; the real core is kept', async () => {
    const res = await recordProbe(work, [probe, 'corefiles', 'crash']);
    expect(line(res.stdout, 'mkfifo')).toBe('mkfifo ok');
    expect(line(res.stdout, 'symlink')).toBe('symlink ok');
    expect(res.manifest.exit.signal).toBe('SIGSEGV');
    const core = CoreFile.load(join(res.bundle, 'core'));
    expect(core.signal).toBe(11);
  });

  it('with no crash, nothing named like a core is taken for one', async () => {
    const res = await recordProbe(work, [probe, 'corefiles'], { timeoutSec: 30 });
    expect(res.manifest.exit.status).toBe(0);
    expect(res.manifest.exit.stopped).toBeNull();
    expect(() => CoreFile.load(join(res.bundle, 'core'))).toThrow(/no such file/);
  });

  it('the core reader refuses a FIFO, a link to /dev/zero and a non-core, in one line', () => {
    const dir = join(work, 'cores');
    mkdirSync(dir);
    const fifo = join(dir, 'fifo.core');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    symlinkSync('/dev/zero', join(dir, 'zero.core'));
    writeFileSync(join(dir, 'text.core'), 'not a core\n');
    for (const [name, why] of [['fifo.core', /not a regular file/], ['zero.core', /too many symbolic links|not a regular file|ELOOP/], ['text.core', /not an ELF file/]] as const) {
      let err: unknown = null;
      try {
        CoreFile.load(join(dir, name));
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(CoreFileError);
      expect((err as Error).message, name).toMatch(why);
      expect((err as Error).message.split('\n')).toHaveLength(1);
    }
  });
});
