import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/packets/errors.js';
import { SbPrintFlag } from '../src/sources/perf-event/options.js';
import { formatSidebandRecord } from '../src/sources/perf-event/format.js';
import {
  PERF_RECORD_MISC_COMM_EXEC,
  PERF_RECORD_MISC_MMAP_BUILD_ID,
  PERF_RECORD_MISC_SWITCH_OUT,
  PerfRecord,
  PerfRecordType,
  SampleField,
  readPerfRecord,
} from '../src/sources/perf-event/record.js';
import {
  IDENTITY_TIME_CONVERSION,
  perfTimeToTsc,
  tscToPerfTime,
  type TimeConversion,
} from '../src/sources/perf-event/time-conversion.js';

/** Little-endian record builder. */
class Bytes {
  private b: number[] = [];
  u8(v: number): this {
    this.b.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v).u8(v >> 8);
  }
  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  u64(v: bigint): this {
    return this.u32(Number(v & 0xffffffffn)).u32(Number((v >> 32n) & 0xffffffffn));
  }
  str(s: string): this {
    for (const c of Buffer.from(s)) this.u8(c);
    this.u8(0);
    while (this.b.length % 8) this.u8(0);
    return this;
  }
  get length(): number {
    return this.b.length;
  }
  bytes(): number[] {
    return this.b;
  }
}

const ALL_SAMPLES = 0x2n | 0x4n | 0x40n | 0x80n | 0x200n | 0x10000n;

/** sample_id trailer for ALL_SAMPLES: pid/tid, time, id, stream_id, cpu+res, identifier. */
function samples(): Bytes {
  return new Bytes().u32(11).u32(12).u64(0x1234n).u64(0x21n).u64(0x22n).u32(3).u32(0).u64(0x23n);
}

function record(type: number, misc: number, body: Bytes, trailer: Bytes | null): Uint8Array {
  const tail = trailer ? trailer.bytes() : [];
  const size = 8 + body.length + tail.length;
  return Uint8Array.from([...new Bytes().u32(type).u16(misc).u16(size).bytes(), ...body.bytes(), ...tail]);
}

function read(bytes: Uint8Array, sampleType = ALL_SAMPLES, offset = 0): { status: number; rec: PerfRecord } {
  const rec = new PerfRecord();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { status: readPerfRecord(view, bytes, offset, bytes.length, sampleType, rec), rec };
}

function expectSamples(rec: PerfRecord): void {
  expect(rec.samples).toBe(
    SampleField.Tid | SampleField.Time | SampleField.Id | SampleField.StreamId | SampleField.Cpu | SampleField.Identifier,
  );
  expect([rec.samplePid, rec.sampleTid, rec.sampleTime, rec.sampleId, rec.sampleStreamId, rec.sampleCpu, rec.sampleIdentifier]).toEqual([
    11, 12, 0x1234n, 0x21n, 0x22n, 3, 0x23n,
  ]);
}

describe('readPerfRecord', () => {
  it('MMAP with a padded filename and all sample_id fields', () => {
    const bytes = record(1, 2, new Bytes().u32(7).u32(8).u64(0x400000n).u64(0x2000n).u64(0x1000n).str('/bin/true'), samples());
    const { status, rec } = read(bytes);
    expect(status).toBe(bytes.length);
    expect(rec.type).toBe(PerfRecordType.Mmap);
    expect([rec.pid, rec.tid, rec.addr, rec.len, rec.pgoff, rec.filename]).toEqual([7, 8, 0x400000n, 0x2000n, 0x1000n, '/bin/true']);
    expectSamples(rec);
  });

  it('MMAP2, also with a build id', () => {
    const body = () => new Bytes().u32(1).u32(2).u64(0x1000n).u64(0x10n).u64(0n);
    const plain = record(10, 0, body().u32(8).u32(1).u64(99n).u64(3n).u32(5).u32(2).str('libc.so'), samples());
    const a = read(plain);
    expect(a.status).toBe(plain.length);
    expect([a.rec.maj, a.rec.min, a.rec.ino, a.rec.inoGeneration, a.rec.prot, a.rec.mmapFlags, a.rec.filename, a.rec.buildId]).toEqual([
      8, 1, 99n, 3n, 5, 2, 'libc.so', '',
    ]);
    expectSamples(a.rec);

    const withId = body().u8(4).u8(0).u8(0).u8(0);
    for (const v of [0xde, 0xad, 0xbe, 0xef]) withId.u8(v);
    for (let i = 4; i < 20; ++i) withId.u8(0);
    withId.u32(5).u32(2).str('x');
    const b = read(record(10, PERF_RECORD_MISC_MMAP_BUILD_ID, withId, samples()));
    expect(b.status).toBeGreaterThan(0);
    expect(b.rec.buildId).toBe('deadbeef');
    expect(b.rec.filename).toBe('x');
  });

  it('COMM with the exec flag', () => {
    const bytes = record(3, PERF_RECORD_MISC_COMM_EXEC, new Bytes().u32(5).u32(6).str('sh'), samples());
    const { status, rec } = read(bytes);
    expect(status).toBe(bytes.length);
    expect([rec.pid, rec.tid, rec.comm]).toEqual([5, 6, 'sh']);
    expect(rec.misc & PERF_RECORD_MISC_COMM_EXEC).toBeTruthy();
  });

  it('EXIT, FORK, LOST, LOST_SAMPLES, AUX, ITRACE_START, THROTTLE', () => {
    const pidBody = () => new Bytes().u32(2).u32(1).u32(3).u32(4).u64(0x77n);
    for (const type of [PerfRecordType.Exit, PerfRecordType.Fork]) {
      const { status, rec } = read(record(type, 0, pidBody(), samples()));
      expect(status).toBe(8 + 24 + 48);
      expect([rec.pid, rec.ppid, rec.tid, rec.ptid, rec.time]).toEqual([2, 1, 3, 4, 0x77n]);
      expectSamples(rec);
    }
    const lost = read(record(2, 0, new Bytes().u64(9n).u64(100n), samples())).rec;
    expect([lost.id, lost.lost]).toEqual([9n, 100n]);
    const ls = read(record(13, 0, new Bytes().u64(42n), samples())).rec;
    expect(ls.lost).toBe(42n);
    const aux = read(record(11, 0, new Bytes().u64(0xa000n).u64(0x1000n).u64(1n), samples())).rec;
    expect([aux.auxOffset, aux.auxSize, aux.auxFlags]).toEqual([0xa000n, 0x1000n, 1n]);
    const its = read(record(12, 0, new Bytes().u32(10).u32(11), samples())).rec;
    expect([its.pid, its.tid]).toEqual([10, 11]);
    const thr = read(record(5, 0, new Bytes().u64(1n).u64(2n).u64(3n), samples())).rec;
    expect([thr.time, thr.id, thr.streamId]).toEqual([1n, 2n, 3n]);
  });

  it('SWITCH and SWITCH_CPU_WIDE', () => {
    const sw = read(record(14, PERF_RECORD_MISC_SWITCH_OUT, new Bytes(), samples()));
    expect(sw.status).toBe(56);
    expect(sw.rec.misc & PERF_RECORD_MISC_SWITCH_OUT).toBeTruthy();
    expectSamples(sw.rec);
    const cw = read(record(15, 0, new Bytes().u32(8).u32(9), samples())).rec;
    expect([cw.nextPrevPid, cw.nextPrevTid]).toEqual([8, 9]);
  });

  it('unknown types are skipped whole, without samples', () => {
    const bytes = record(99, 3, new Bytes().u64(1n).u64(2n).u32(0), null);
    const { status, rec } = read(bytes);
    expect(status).toBe(bytes.length);
    expect(rec.type).toBe(99);
    expect(rec.samples).toBe(0);
  });

  it('reads only the sample_id fields the sample type selects', () => {
    const bytes = record(12, 0, new Bytes().u32(1).u32(1), new Bytes().u64(5n).u32(2).u32(0));
    const { status, rec } = read(bytes, 0x4n | 0x80n);
    expect(status).toBe(bytes.length);
    expect(rec.samples).toBe(SampleField.Time | SampleField.Cpu);
    expect([rec.sampleTime, rec.sampleCpu]).toEqual([5n, 2]);
  });

  it('reads consecutive records at their offsets', () => {
    const a = record(12, 0, new Bytes().u32(1).u32(1), null);
    const b = record(12, 0, new Bytes().u32(2).u32(2), null);
    const both = Uint8Array.from([...a, ...b]);
    const first = read(both, 0n, 0);
    const second = read(both, 0n, first.status);
    expect(second.rec.offset).toBe(16);
    expect(second.rec.pid).toBe(2);
    expect(read(both, 0n, 32).status).toBe(-ErrorCode.Eos);
  });

  describe('bad input', () => {
    const good = record(12, 0, new Bytes().u32(1).u32(1), new Bytes().u64(7n));

    it('end of data and a type-0 header are a clean end', () => {
      expect(read(new Uint8Array(0), 4n).status).toBe(-ErrorCode.Eos);
      const type0 = Uint8Array.from(good);
      type0.fill(0, 0, 4);
      const end = read(type0, 4n);
      expect(end.status).toBe(-ErrorCode.Eos);
      expect(end.rec.problem).toBe('');
      // All-zero padding has size 0: out of sync, as libipt's pev_read says.
      expect(read(new Uint8Array(16), 4n).status).toBe(-ErrorCode.NoSync);
    });

    it('a truncated header or record is the end, with a problem to report', () => {
      const h = read(good.subarray(0, 5), 4n);
      expect(h.status).toBe(-ErrorCode.Eos);
      expect(h.rec.problem).toMatch(/truncated record header/);
      const r = read(good.subarray(0, 20), 4n);
      expect(r.status).toBe(-ErrorCode.Eos);
      expect(r.rec.problem).toBe('truncated record: size 24, 20 bytes left');
    });

    it('a size smaller than the header is out of sync', () => {
      const bytes = Uint8Array.from(good);
      bytes[6] = 7;
      bytes[7] = 0;
      expect(read(bytes, 4n).status).toBe(-ErrorCode.NoSync);
    });

    it('a sample type that does not fit the size is out of sync, never a read past the record', () => {
      const { status, rec } = read(good, ALL_SAMPLES);
      expect(status).toBe(-ErrorCode.NoSync);
      expect(rec.problem).toMatch(/run past/);
      // Too few samples for the size: also out of sync.
      expect(read(good, 0n).status).toBe(-ErrorCode.NoSync);
    });

    it('a body too small for the type is out of sync', () => {
      const bytes = record(1, 0, new Bytes().u32(1).u32(1), null);
      expect(read(bytes, 0n).status).toBe(-ErrorCode.NoSync);
    });

    it('a filename without NUL is a bad packet', () => {
      const body = new Bytes().u32(1).u32(1).u64(0n).u64(0n).u64(0n);
      for (let i = 0; i < 8; ++i) body.u8(0x41);
      expect(read(record(1, 0, body, null), 0n).status).toBe(-ErrorCode.BadPacket);
    });
  });
});

describe('the pevent vectors', () => {
  const root = '/work/shared/vectors/libipt';
  const manifest = JSON.parse(readFileSync(join(root, 'MANIFEST.json'), 'utf8')) as { name: string; suite?: string }[];
  for (const c of manifest.filter((e) => e.suite === 'pevent')) {
    it(`${c.name}: every .sb parses to its end and formats as ptdump prints it`, () => {
      const dir = join(root, c.name);
      const expected = readdirSync(dir)
        .filter((f) => f.endsWith('-ptdump.exp'))
        .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
        .filter((l) => l.includes('PERF_RECORD_'))
        .map((l) => l.replace(/\s+/g, ' ').trim());
      const verbose = c.name.endsWith('verbose');
      const timed = c.name.startsWith('pevent-dump');
      const got: string[] = [];
      for (const sb of readdirSync(dir).filter((f) => f.endsWith('.sb'))) {
        const sampleType = BigInt(/sample-type=(0x[0-9a-f]+)/.exec(sb)![1]!);
        const bytes = readFileSync(join(dir, sb));
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const rec = new PerfRecord();
        let pos = 0;
        for (;;) {
          const size = readPerfRecord(view, bytes, pos, bytes.length, sampleType, rec);
          if (size === -ErrorCode.Eos) break;
          expect(size).toBeGreaterThan(0);
          const tsc = perfTimeToTsc(rec.sampleTime, IDENTITY_TIME_CONVERSION);
          const flags = (verbose ? SbPrintFlag.Verbose : SbPrintFlag.Compact) | SbPrintFlag.FileOffset | (timed ? SbPrintFlag.Tsc : 0);
          // Verbose records span lines; the first carries the record name.
          got.push(formatSidebandRecord(rec, sb, pos, tsc, flags).split('\n')[0]!.replace(/\s+/g, ' ').trim());
          pos += size;
        }
        expect(pos).toBe(bytes.length);
        expect(rec.problem).toBe('');
      }
      expect(got.sort()).toEqual(expected.sort());
    });
  }
});

describe('time conversion', () => {
  it('is the identity with zero/shift 0/mult 1', () => {
    expect(perfTimeToTsc(12345n, IDENTITY_TIME_CONVERSION)).toBe(12345n);
    expect(tscToPerfTime(12345n, IDENTITY_TIME_CONVERSION)).toBe(12345n);
  });

  it('maps perf time 0 (synthesized records) to TSC 0', () => {
    expect(perfTimeToTsc(0n, { timeZero: 500n, timeShift: 10, timeMult: 3 })).toBe(0n);
  });

  it('follows the kernel formula with a real-looking conversion', () => {
    // A 2.1 GHz TSC: time_mult = 2^31 * 1e9 / 2.1e9, time_shift = 31.
    const conv: TimeConversion = { timeZero: 1_700_000_000_000_000n, timeShift: 31, timeMult: 1022611260 };
    const tsc = 0x0123_4567_89abn;
    const time = tscToPerfTime(tsc, conv);
    // time = zero + tsc * mult >> shift, exactly, in wide arithmetic.
    expect(time).toBe(conv.timeZero + ((tsc * BigInt(conv.timeMult)) >> 31n));
    const back = perfTimeToTsc(time, conv);
    // A nanosecond is ~2.1 ticks here: truncating both ways loses at most 3.
    expect(back <= tsc && tsc - back <= 3n).toBe(true);
    // Inverse formula: ((t - zero) << shift) / mult, exactly.
    const t = time - conv.timeZero;
    expect(back).toBe(((t / 1022611260n) << 31n) + ((t % 1022611260n) << 31n) / 1022611260n);
  });

  it('wraps like unsigned 64-bit C arithmetic', () => {
    // A time before time_zero wraps around.
    expect(perfTimeToTsc(5n, { timeZero: 10n, timeShift: 0, timeMult: 1 })).toBe((1n << 64n) - 5n);
  });

  it('honours the short TSC (cap_user_time_short) on the way to perf time', () => {
    const conv: TimeConversion = { timeZero: 0n, timeShift: 0, timeMult: 1, timeCycles: 0x100n, timeMask: 0xffn };
    expect(tscToPerfTime(0x1005n, conv)).toBe(0x105n);
  });

  it('rejects a zero multiplier', () => {
    expect(() => perfTimeToTsc(1n, { timeZero: 0n, timeShift: 0, timeMult: 0 })).toThrow(RangeError);
  });
});
