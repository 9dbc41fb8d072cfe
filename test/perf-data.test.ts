import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PtError } from '../src/packets/errors.js';
import type { TraceSource } from '../src/packets/trace-source.js';
import { Asid } from '../src/flow/address-space.js';
import {
  configField,
  decoderConfigFor,
  defaultIntelPtInfo,
  encodeIntelPtInfo,
  INTEL_PT_CONFIG,
  parseIntelPtInfo,
} from '../src/sources/perf-data/auxtrace-info.js';
import { PerfDataError } from '../src/sources/perf-data/file-access.js';
import { HeaderFeature } from '../src/sources/perf-data/header.js';
import { flowInputs, readPerfData, readPerfDataBytes } from '../src/sources/perf-data/perf-data.js';
import { resolveMappedFile } from '../src/sources/perf-data/sideband.js';
import { type PerfDataSpec, writePerfData } from '../src/sources/perf-data/writer.js';

const dir = mkdtempSync(join(tmpdir(), 'ptscope-perf-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic bytes: a trace stand-in whose content the reader must return unchanged. */
function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Zero-padded to 8 bytes, as the writer (like perf record) stores buffers. */
function padded(b: Uint8Array): Uint8Array {
  const out = new Uint8Array((b.length + 7) & ~7);
  out.set(b);
  return out;
}

function readAll(src: TraceSource): Uint8Array {
  const out = new Uint8Array(src.size);
  expect(src.read(out, 0, 0, src.size)).toBe(src.size);
  return out;
}

const codeFile = join(dir, 'code.bin');
const code = bytes(0x3000, 7);
writeFileSync(codeFile, code);

function perCpuSpec(): PerfDataSpec {
  const info = defaultIntelPtInfo(11);
  info.tscCtcN = 184;
  info.tscCtcD = 2;
  info.maxNonTurboRatio = 24;
  info.filter = 'filter 0x401000/0x100@/bin/true';
  info.timeShift = 10;
  info.timeMult = 1000;
  info.timeZero = 12345n;
  return {
    info,
    ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch | INTEL_PT_CONFIG.tsc | INTEL_PT_CONFIG.mtc | (3n << INTEL_PT_CONFIG.mtcPeriodShift),
    sideband: [
      { kind: 'comm', time: 100n, cpu: 0, pid: 42, tid: 42, comm: 'prog', exec: true },
      { kind: 'mmap2', time: 110n, cpu: 0, pid: 42, tid: 42, addr: 0x400000n, len: 0x2000n, pgoff: 0x1000n, filename: codeFile },
      { kind: 'itrace-start', time: 120n, cpu: 0, pid: 42, tid: 42 },
      { kind: 'fork', time: 130n, cpu: 1, pid: 43, ppid: 42, tid: 43, ptid: 42 },
      { kind: 'comm', time: 140n, cpu: 1, pid: 43, tid: 43, comm: 'child', exec: true },
      { kind: 'mmap2', time: 150n, cpu: 1, pid: 43, tid: 43, addr: 0x500000n, len: 0x1000n, pgoff: 0n, filename: codeFile },
      { kind: 'switch', time: 160n, cpu: 1, pid: 43, tid: 43, out: false },
      { kind: 'switch', time: 170n, cpu: 1, pid: 43, tid: 43, out: true, nextPrev: { pid: 0, tid: 0 } },
      { kind: 'exit', time: 180n, cpu: 1, pid: 43, ppid: 42, tid: 43, ptid: 42 },
    ],
    aux: [
      { idx: 0, cpu: 0, tid: -1, data: bytes(1000, 1), reference: 0x1234n },
      { idx: 1, cpu: 1, tid: -1, data: bytes(64, 2) },
      { idx: 0, cpu: 0, tid: -1, data: bytes(333, 3) },
    ],
    features: { hostname: 'box', cpuId: 'GenuineIntel,6,142,10', cmdline: ['perf', 'record', '-e', 'intel_pt//u'] },
  };
}

describe('perf.data writer -> reader round trip', () => {
  const path = join(dir, 'percpu.data');
  const spec = perCpuSpec();
  const layout = writePerfData(path, spec);
  const model = readPerfData(path);
  afterAll(() => model.close());

  it('gives back each cpu stream: the buffers of one mmap index, concatenated in file order', () => {
    expect(model.streams.map((s) => [s.idx, s.cpu, s.tid, s.fragments.length])).toEqual([
      [0, 0, -1, 2],
      [1, 1, -1, 1],
    ]);
    const cpu0 = readAll(model.streams[0]!.source(model.file));
    const expected0 = new Uint8Array([...padded(bytes(1000, 1)), ...padded(bytes(333, 3))]);
    expect(Buffer.from(cpu0).equals(Buffer.from(expected0))).toBe(true);
    expect(Buffer.from(readAll(model.streams[1]!.source(model.file))).equals(Buffer.from(bytes(64, 2)))).toBe(true);
    const f = model.streams[0]!.fragments;
    expect(f.map((x) => [x.recordOffset, x.auxOffset, x.reference])).toEqual([
      [layout.auxtraceOffsets[0], 0n, 0x1234n],
      [layout.auxtraceOffsets[2], 1000n, 0n],
    ]);
  });

  it('reads stream ranges that span buffer boundaries', () => {
    const src = model.streams[0]!.source(model.file);
    const all = readAll(src);
    for (const [from, len] of [
      [990, 30],
      [0, 1336],
      [1007, 2],
      [1300, 100],
    ] as const) {
      const out = new Uint8Array(len);
      const n = src.read(out, 0, from, len);
      expect(n).toBe(Math.min(len, all.length - from));
      expect(Buffer.from(out.subarray(0, n)).equals(Buffer.from(all.subarray(from, from + n)))).toBe(true);
    }
  });

  it('gives back the Intel PT configuration and decoder settings', () => {
    expect(model.ptInfo).toEqual({ ...spec.info });
    expect(model.ptAttr?.attr.type).toBe(11);
    expect(model.ptAttr?.attr.config).toBe(spec.ptConfig);
    expect(model.ptAttr?.name).toBe('intel_pt//u');
    expect(model.settings).toEqual({ tsc: true, mtc: true, cyc: false, retCompression: true, mtcFreq: 3 });
    expect(model.decoderConfig.mtcFreq).toBe(3);
    expect(model.decoderConfig.nomFreq).toBe(24);
    expect([model.decoderConfig.cpuid15Eax, model.decoderConfig.cpuid15Ebx]).toEqual([2, 184]);
    expect(model.decoderConfig.cpu).toEqual({ vendor: 'intel', family: 6, model: 142, stepping: 10 });
    expect(model.decoderConfig.errata.skd007).toBe(true);
    expect(model.timeConv).toMatchObject({ timeShift: 10, timeMult: 1000, timeZero: 12345n });
  });

  it('gives back header features and the auxtrace index', () => {
    const f = model.features;
    expect(f.hostname).toBe('box');
    expect(f.cpuId).toBe('GenuineIntel,6,142,10');
    expect(f.cmdline).toEqual(['perf', 'record', '-e', 'intel_pt//u']);
    expect(f.arch).toBe('x86_64');
    expect([f.nrCpusAvail, f.nrCpusOnline]).toEqual([2, 2]);
    expect(f.auxtraceIndex.map((e) => e.fileOffset)).toEqual(layout.auxtraceOffsets);
    expect(model.header.features).toContain(HeaderFeature.Auxtrace);
    expect(model.header.data).toEqual({ offset: layout.dataOffset, size: layout.dataSize });
    expect(model.warnings).toEqual([]);
  });

  it('builds the sideband timeline: mappings, tasks, who runs on each cpu', () => {
    const sb = model.sideband;
    expect(sb.mappings.filter((m) => m.pid === 42).map((m) => [m.addr, m.len, m.pgoff, m.filename, m.time])).toEqual([
      [0x400000n, 0x2000n, 0x1000n, codeFile, 110n],
    ]);
    // The fork copies the parent's mappings; the child's exec drops them again.
    expect(sb.mappingsAt(43, 135n).map((m) => m.addr)).toEqual([0x400000n]);
    expect(sb.mappingsAt(43, 155n).map((m) => m.addr)).toEqual([0x500000n]);
    expect(sb.mappingsAt(42, 105n)).toEqual([]);
    expect(sb.commAt(42, 1000n)).toBe('prog');
    expect(sb.commAt(43, 145n)).toBe('child');
    expect(sb.tasks.get(43)).toMatchObject({ pid: 43, ppid: 42, forkTime: 130n, exitTime: 180n });
    expect(sb.taskOn(0, 125n)).toEqual({ pid: 42, tid: 42 });
    expect(sb.taskOn(0, 115n)).toBeNull();
    expect(sb.taskOn(1, 165n)).toEqual({ pid: 43, tid: 43 });
    expect(sb.taskOn(1, 175n)).toEqual({ pid: 0, tid: 0 });
  });

  it('provides per-stream flow inputs whose image maps the file at the recorded pages', () => {
    const inputs = flowInputs(model);
    expect(inputs.map((i) => i.stream.label)).toEqual(['cpu 0', 'cpu 1']);
    expect(inputs[0]!.config).toBe(model.decoderConfig);
    const task = inputs[0]!.taskAt(1000n);
    expect(task).toEqual({ pid: 42, tid: 42 });
    const { image, missing } = inputs[0]!.imageFor(task!.pid, 1000n);
    expect(missing).toEqual([]);
    const buf = new Uint8Array(16);
    expect(image.read(buf, 0x400010, 16, new Asid())).toBe(16);
    expect(Buffer.from(buf).equals(Buffer.from(code.subarray(0x1010, 0x1020)))).toBe(true);
    expect(image.read(buf, 0x402000, 1, new Asid())).toBeLessThan(0);
  });
});

describe('per-thread recordings', () => {
  it('keys streams by thread and names the thread as the task', () => {
    const info = defaultIntelPtInfo(9);
    info.perCpuMmaps = false;
    const path = join(dir, 'perthread.data');
    writePerfData(path, {
      info,
      ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch,
      sideband: [
        { kind: 'comm', time: 1n, cpu: -1, pid: 7, tid: 8, comm: 't', exec: false },
        { kind: 'mmap2', time: 2n, cpu: -1, pid: 7, tid: 8, addr: 0x1000n, len: 0x1000n, pgoff: 0n, filename: codeFile },
      ],
      aux: [{ idx: 0, cpu: -1, tid: 8, data: bytes(24, 9) }],
    });
    const m = readPerfData(path);
    try {
      expect(m.ptInfo.perCpuMmaps).toBe(false);
      expect(m.streams.map((s) => [s.label, s.size])).toEqual([['tid 8', 24]]);
      const input = flowInputs(m)[0]!;
      expect(input.taskAt(5n)).toEqual({ pid: 7, tid: 8 });
      expect(input.imageFor(7, 5n).missing).toEqual([]);
      expect(m.settings.tsc).toBe(false);
    } finally {
      m.close();
    }
  });
});

describe('ID_INDEX', () => {
  it('maps every id of every event to its queue: per-cpu (cpu, tid -1) and per-thread (cpu -1, tid)', () => {
    const path = join(dir, 'idindex-percpu.data');
    const layout = writePerfData(path, perCpuSpec());
    const m = readPerfData(path);
    try {
      // Per-cpu with context switches: the cpu-wide switch event after the PT event, as perf orders them.
      expect(layout.attrIds.switch).toHaveLength(2);
      const ids = [...layout.attrIds.pt, ...layout.attrIds.switch, ...layout.attrIds.sideband];
      expect(m.idIndex).toEqual(ids.map((id, i) => ({ id, idx: i % 2, cpu: i % 2, tid: -1 })));
    } finally {
      m.close();
    }
    const info = defaultIntelPtInfo(9);
    info.perCpuMmaps = false;
    const threads = join(dir, 'idindex-perthread.data');
    const l2 = writePerfData(threads, {
      info,
      ptConfig: INTEL_PT_CONFIG.pt | INTEL_PT_CONFIG.branch,
      sideband: [{ kind: 'comm', time: 1n, cpu: -1, pid: 7, tid: 7, comm: 't', exec: true }],
      aux: [
        { idx: 0, cpu: -1, tid: 7, data: bytes(16, 1) },
        { idx: 1, cpu: -1, tid: 9, data: bytes(16, 2) },
      ],
    });
    const m2 = readPerfData(threads);
    try {
      const ids = [...l2.attrIds.pt, ...l2.attrIds.sideband];
      expect(m2.idIndex).toEqual(ids.map((id, i) => ({ id, idx: i % 2, cpu: -1, tid: i % 2 ? 9 : 7 })));
      // Per-thread mmaps: no CPU field in either event's samples.
      expect(m2.attrs.every((a) => (a.attr.sampleType & 0x80n /* CPU */) === 0n)).toBe(true);
    } finally {
      m2.close();
    }
  });

  it('an entry count larger than the record is a warning, not a crash', () => {
    const path = join(dir, 'idindex-bad.data');
    const layout = writePerfData(path, perCpuSpec());
    const b = new Uint8Array(readFileSync(path));
    const v = new DataView(b.buffer);
    // ID_INDEX follows TIME_CONV (56 bytes) at the start of the data section.
    const at = layout.dataOffset + 56;
    expect(v.getUint32(at, true)).toBe(69);
    v.setBigUint64(at + 8, 1000n, true);
    const m = readPerfDataBytes('bad.data', b);
    try {
      expect(m.idIndex).toEqual([]);
      expect(m.warnings).toEqual([`ID_INDEX claims 1000 entries in ${v.getUint16(at + 6, true)} bytes at offset 0x${at.toString(16)}`]);
      expect(m.streams).toHaveLength(2);
    } finally {
      m.close();
    }
  });
});

describe('AUXTRACE_INFO for intel_pt', () => {
  it('encodes and parses every field, the filter string and the event-trace capability', () => {
    const info = defaultIntelPtInfo(10);
    Object.assign(info, {
      haveSchedSwitch: 3,
      snapshotMode: true,
      perCpuMmaps: false,
      tscCtcN: 300,
      tscCtcD: 3,
      maxNonTurboRatio: 33,
      filter: 'filter main @ /bin/ls',
      capEventTrace: true,
      capUserTimeZero: false,
      timeZero: 0xffff_0000_1111n,
    });
    const rec = encodeIntelPtInfo(info);
    expect(rec.length % 8).toBe(0);
    expect(new DataView(rec.buffer).getUint16(6, true)).toBe(rec.length);
    expect(parseIntelPtInfo(rec)).toEqual(info);
  });

  it('refuses records that perf refuses', () => {
    const rec = encodeIntelPtInfo(defaultIntelPtInfo(10));
    expect(parseIntelPtInfo(rec.subarray(0, 16 + 8 * 9))).toMatch(/needs 10/);
    const withFilter = encodeIntelPtInfo({ ...defaultIntelPtInfo(10), filter: 'abc' });
    expect(parseIntelPtInfo(withFilter.subarray(0, withFilter.length - 8))).toMatch(/filter string length/);
    const other = rec.slice();
    other[8] = 2; // an AUXTRACE type other than Intel PT
    expect(parseIntelPtInfo(other)).toBeNull();
  });

  it('reads fields of the attr config through their masks', () => {
    expect(configField(0x3c000n, INTEL_PT_CONFIG.mtcPeriodMask)).toBe(15);
    expect(configField(0x8000n, INTEL_PT_CONFIG.mtcPeriodMask)).toBe(2);
    const cfg = decoderConfigFor(defaultIntelPtInfo(8), INTEL_PT_CONFIG.mtc | (9n << 14n), 'AuthenticAMD,23,1,2');
    expect(cfg.mtcFreq).toBe(9);
    expect(cfg.cpu.vendor).toBe('unknown');
  });
});

describe('perf.data reader robustness', () => {
  // A plain Uint8Array: its slice() copies (a Buffer's would not).
  const good = new Uint8Array(
    readFileSync(
      (() => {
        const p = join(dir, 'good.data');
        writePerfData(p, perCpuSpec());
        return p;
      })(),
    ),
  );
  const layout = (() => {
    const m = readPerfDataBytes('good', good);
    m.close();
    return m.header;
  })();

  function fails(b: Uint8Array, pattern: RegExp, kind: 'format' | 'no-pt' = 'format'): PerfDataError {
    let err: unknown;
    try {
      readPerfDataBytes('x.data', b).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PerfDataError);
    const e = err as PerfDataError;
    expect(e.kind).toBe(kind);
    expect(e.message).toMatch(pattern);
    expect(e.message).not.toContain('\n');
    return e;
  }

  function patch(at: number, v: bigint | number, width: 2 | 4 | 8): Uint8Array {
    const b = good.slice();
    const dv = new DataView(b.buffer);
    if (width === 2) dv.setUint16(at, Number(v), true);
    else if (width === 4) dv.setUint32(at, Number(v), true);
    else dv.setBigUint64(at, BigInt(v), true);
    return b;
  }

  it('bad magic, empty and short files', () => {
    fails(patch(0, 0x1234, 8), /bad magic at offset 0x0/);
    fails(new Uint8Array(0), /shorter than the 104-byte header/);
    fails(good.subarray(0, 50), /shorter than the 104-byte header/);
    fails(new TextEncoder().encode('PERFFILE' + '\0'.repeat(200)), /version 1/);
  });

  it('a data section or attr section past the end of the file', () => {
    fails(patch(48, BigInt(good.length), 8), /data section .* runs past the end of the file/);
    fails(good.subarray(0, layout.data.offset + 40), /data section .* runs past the end of the file .* at offset 0x/);
    fails(patch(24, 1n << 40n, 8), /attr section .* runs past the end/);
    fails(patch(40, 1n << 60n, 8), /not a valid file position/);
  });

  it('records with a size below the header or running past the data section', () => {
    const first = layout.data.offset;
    const e = fails(patch(first + 6, 4, 2), /record size 4 smaller than its 8-byte header/);
    expect(e.offset).toBe(first);
    fails(patch(first + 6, 0, 2), /record size 0 smaller/);
    // The last record (FINISHED_ROUND) claims more bytes than the data section has.
    const last = layout.data.offset + layout.data.size - 8;
    const e2 = fails(patch(last + 6, 16, 2), /size 16 runs past the end of the data section/);
    expect(e2.offset).toBe(last);
    // Shrinking the data section cuts it (the features after it are then misplaced: a warning only).
    fails(patch(48, BigInt(layout.data.size - 4), 8), /truncated record header: 4 bytes left/);
  });

  it('AUXTRACE data running past the data section', () => {
    const m = readPerfDataBytes('good', good);
    const at = m.streams[1]!.fragments[0]!.recordOffset;
    m.close();
    fails(patch(at + 8, 1n << 32n, 8), new RegExp(`AUXTRACE data of 0x100000000 bytes runs past .* at offset 0x${at.toString(16)}`));
  });

  it('a perf.data without Intel PT data is its own error', () => {
    const p = join(dir, 'nopt.data');
    writePerfData(p, { ...perCpuSpec(), aux: [] });
    const e = fails(new Uint8Array(readFileSync(p)), /^x\.data: no Intel PT data \(no AUXTRACE records\)$/, 'no-pt');
    expect(e).toBeInstanceOf(PtError);
  });

  it('never hangs or throws anything but PerfDataError on corrupted files', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    let parsed = 0;
    for (let round = 0; round < 400; round++) {
      const b = good.slice();
      const edits = 1 + rnd(6);
      for (let k = 0; k < edits; k++) b[rnd(b.length)] = rnd(256);
      const cut = rnd(4) === 0 ? rnd(b.length) : b.length;
      try {
        const m = readPerfDataBytes('fuzz', b.subarray(0, cut));
        for (const s of m.streams) readAll(s.source(m.file));
        m.close();
        parsed++;
      } catch (e) {
        if (!(e instanceof PerfDataError)) throw e;
        expect((e as Error).message).not.toContain('\n');
      }
    }
    expect(parsed).toBeGreaterThan(0);
  });
});

describe('large traces', () => {
  it('streams a 24 MiB trace through writer and reader without holding it in memory', () => {
    const size = 24 << 20;
    // A source that computes its bytes: the writer must stream it.
    const gen: TraceSource = {
      size,
      read(dst, dstOffset, offset, length) {
        const n = Math.max(0, Math.min(length, size - offset));
        for (let i = 0; i < n; i++) dst[dstOffset + i] = ((offset + i) * 131 + ((offset + i) >>> 12)) & 0xff;
        return n;
      },
      close() {},
    };
    const p = join(dir, 'large.data');
    writePerfData(p, { ...perCpuSpec(), aux: [{ idx: 0, cpu: 0, tid: -1, data: gen }] });
    const m = readPerfData(p);
    try {
      expect(m.streams[0]!.size).toBe(size);
      const src = m.streams[0]!.source(m.file);
      const a = new Uint8Array(4096);
      const b = new Uint8Array(4096);
      for (const at of [0, 5 << 20, size - 4096]) {
        src.read(a, 0, at, 4096);
        gen.read(b, 0, at, 4096);
        expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
      }
    } finally {
      m.close();
    }
  });
});

describe('sysroot resolution', () => {
  it('looks mapped names up under the sysroot and gives pseudo files no path', () => {
    expect(resolveMappedFile(codeFile)).toBe(codeFile);
    expect(resolveMappedFile('/code.bin', dir)).toBe(codeFile);
    expect(resolveMappedFile('/nope', dir)).toBeNull();
    expect(resolveMappedFile('[vdso]')).toBeNull();
    expect(resolveMappedFile('//anon')).toBeNull();
  });
});
