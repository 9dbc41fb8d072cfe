import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DecoderConfig, defaultConfig } from '../src/packets/config.js';
import { type Errata, errataFor, parseCpu } from '../src/packets/cpu.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { ErrorCode, errorMessage } from '../src/packets/errors.js';
import { Packet } from '../src/packets/packet.js';
import { PacketType } from '../src/packets/packet-type.js';
import { TimeCalibration } from '../src/events/time-calibration.js';
import { addU64, ctcDelta, ctcToFastCounter, mulDivU64, subU64 } from '../src/events/time-math.js';
import {
  PtdumpTimeTracking,
  TimeColumn,
  TimeColumnKind,
  TimeTracker,
  Timing,
  formatFixed3,
  formatTimeColumn,
  timeColumnId,
} from '../src/events/time.js';

const VECTORS = '/work/shared/vectors/libipt';

function config(over: Partial<DecoderConfig> = {}): DecoderConfig {
  return { ...defaultConfig(), ...over };
}

function tsc(value: bigint): Packet {
  const p = new Packet();
  p.type = PacketType.Tsc;
  p.hi = Number(value >> 32n);
  p.lo = Number(value & 0xffffffffn);
  return p;
}
function tma(ctc: number, fc: number): Packet {
  const p = new Packet();
  p.type = PacketType.Tma;
  p.ctc = ctc;
  p.fc = fc;
  return p;
}
function mtc(ctc: number): Packet {
  const p = new Packet();
  p.type = PacketType.Mtc;
  p.ctc = ctc;
  return p;
}
function cyc(value: number): Packet {
  const p = new Packet();
  p.type = PacketType.Cyc;
  p.cyc = value;
  p.hi = Math.floor(value / 4294967296);
  p.lo = value >>> 0;
  return p;
}
function cbr(ratio: number): Packet {
  const p = new Packet();
  p.type = PacketType.Cbr;
  p.ratio = ratio;
  return p;
}
function simple(type: PacketType): Packet {
  const p = new Packet();
  p.type = type;
  return p;
}

describe('time arithmetic', () => {
  it('corrects a single CTC wrap-around', () => {
    // mtcFreq 0: MTC carries CTC[7:0]; 0xff -> 0x01 is two ticks.
    expect(ctcDelta(0x01, 0xff, 0)).toBe(2);
    // mtcFreq 4: the MTC bits are CTC[11:4], wrapping at 0x1000.
    expect(ctcDelta(0x010, 0xff0, 4)).toBe(0x20);
    expect(ctcDelta(0x30, 0x10, 4)).toBe(0x20);
  });

  it('converts CTC to TSC ticks with the CPUID 0x15 ratio, truncating', () => {
    // TSC/crystal = EBX/EAX (SDM CPUID leaf 15H).
    expect(ctcToFastCounter(14, 2, 1)).toBe(7);
    expect(ctcToFastCounter(15, 2, 1)).toBe(7);
    expect(ctcToFastCounter(3, 1, 4)).toBe(12);
    expect(ctcToFastCounter(3, 0, 4)).toBe(-ErrorCode.BadConfig);
    expect(ctcToFastCounter(3, 1, 0)).toBe(-ErrorCode.BadConfig);
  });

  it('multiplies and divides as uint64, exactly beyond 2^53', () => {
    expect(mulDivU64(3, 512, 256)).toBe(6);
    expect(mulDivU64(2 ** 40, 2 ** 20, 2 ** 20)).toBe(2 ** 40);
    // (2^63 * 4) mod 2^64 = 0.
    expect(mulDivU64(2 ** 63, 4, 1)).toBe(0);
    expect(mulDivU64(2 ** 52 + 1, 2, 2)).toBe(2 ** 52 + 1);
  });

  it('adds and subtracts uint64 hi:lo with carry and borrow', () => {
    const v = new Uint32Array([0, 0xfffffff0]);
    addU64(v, 0x20);
    expect([...v]).toEqual([1, 0x10]);
    subU64(v, 0x20);
    expect([...v]).toEqual([0, 0xfffffff0]);
    addU64(v, 2 ** 33 + 0x10);
    expect([...v]).toEqual([3, 0]);
    const z = new Uint32Array([0, 5]);
    subU64(z, 8);
    expect([...z]).toEqual([0xffffffff, 0xfffffffd]);
  });

  it('formats the calibration ratio like printf %.3f (ties to even)', () => {
    // Doubles that are not multiples of 1/256, and huge ratios (u64 beyond 2^53).
    expect(formatFixed3(0.1, false)).toBe('0.100');
    expect(formatFixed3(2.0005, false)).toBe('2.001'); // 2.000500000000000167 in binary
    expect(formatFixed3(Number(0xffffffffffffffffn) / 256, false)).toBe('72057594037927936.000');
    expect(formatFixed3(-1e-9, true)).toBe('-0.000');
    expect(formatFixed3(512 / 256, false)).toBe('2.000');
    expect(formatFixed3(64 / 256, true)).toBe('+0.250');
    expect(formatFixed3(0 / 256, true)).toBe('+0.000');
    expect(formatFixed3(-64 / 256, true)).toBe('-0.250');
    expect(formatFixed3(16 / 256, false)).toBe('0.062'); // 0.0625: tie, to even
    expect(formatFixed3(48 / 256, false)).toBe('0.188'); // 0.1875: tie, to even
    expect(formatFixed3(1 / 256, false)).toBe('0.004'); // 0.00390625
  });
});

describe('TimeTracker', () => {
  it('has no time and no cbr before TSC and CBR', () => {
    const t = new TimeTracker();
    expect(t.queryTsc()).toBe(-ErrorCode.NoTime);
    expect(t.queryCbr()).toBe(-ErrorCode.NoCbr);
    expect(t.onCbr(cbr(0))).toBe(-ErrorCode.BadPacket);
    expect(t.onCbr(cbr(0x1c))).toBe(0);
    expect(t.queryCbr()).toBe(0x1c);
    expect(t.onTsc(tsc(0x1234n))).toBe(0);
    expect(t.queryTsc()).toBe(0);
    expect(t.tscBigInt()).toBe(0x1234n);
  });

  it('advances by MTC: TSC - TMA.fc + ctc_delta * EBX / EAX', () => {
    const c = config({ mtcFreq: 4, cpuid15Eax: 2, cpuid15Ebx: 1 });
    const t = new TimeTracker();
    t.onTsc(tsc(0x1000n));
    // TMA: CTC 0x12 (all 12 MTC-visible bits), FastCounter 6.
    expect(t.onTma(tma(0x12, 6), c)).toBe(0);
    expect(t.tscBigInt()).toBe(0x1000n); // TMA itself does not move the estimate
    // MTC 2 -> CTC 0x20: 14 CTC ticks = 7 TSC ticks after TSC - 6.
    expect(t.onMtc(mtc(2), c)).toBe(0);
    expect(t.tscBigInt()).toBe(0x1000n - 6n + 7n);
    // MTC 3: 16 more CTC ticks = 8 TSC ticks.
    expect(t.onMtc(mtc(3), c)).toBe(0);
    expect(t.tscBigInt()).toBe(0x1001n + 8n);
  });

  it('estimates missing high CTC bits when TMA carries too few', () => {
    // mtcFreq 12: MTC holds CTC[19:12], TMA only CTC[15:0].
    const c = config({ mtcFreq: 12, cpuid15Eax: 2, cpuid15Ebx: 1 });
    const t = new TimeTracker();
    t.onTsc(tsc(0xa0018n));
    t.onTma(tma(0xe020, 8), c);
    // MTC 0xaf -> CTC 0xaf000; the TMA CTC becomes 0xae020: 0xfe0 ticks,
    // 0x7f0 TSC ticks after 0xa0010.
    expect(t.onMtc(mtc(0xaf), c)).toBe(0);
    expect(t.tscBigInt()).toBe(0xa0010n + 0x7f0n);
  });

  it('ignores MTC between TSC and TMA and rejects a TMA without TSC', () => {
    const c = config({ mtcFreq: 0, cpuid15Eax: 1, cpuid15Ebx: 1 });
    const t = new TimeTracker();
    expect(t.onTma(tma(1, 1), c)).toBe(-ErrorCode.BadContext);
    t.onTsc(tsc(0x100n));
    expect(t.onMtc(mtc(9), c)).toBe(0);
    expect(t.tscBigInt()).toBe(0x100n);
    expect(t.onTma(tma(0x10, 0), c)).toBe(0);
    expect(t.onTma(tma(0x10, 0), c)).toBe(-ErrorCode.BadContext);
  });

  it('scales CYC by the calibration ratio and counts CYC without one as lost', () => {
    const c = config();
    const t = new TimeTracker();
    t.onTsc(tsc(0xa0000n));
    expect(t.onCyc(cyc(3), 0, c)).toBe(0);
    expect(t.lostCyc).toBe(1);
    expect(t.tscBigInt()).toBe(0xa0000n);
    // fcr 512 = 2.0 TSC ticks per cycle.
    expect(t.onCyc(cyc(3), 512, c)).toBe(0);
    expect(t.tscBigInt()).toBe(0xa0006n);
    expect(t.onCyc(cyc(1), 512, c)).toBe(0);
    expect(t.tscBigInt()).toBe(0xa0008n);
    // TSC recovers from losses.
    t.onTsc(tsc(0xa0100n));
    expect(t.lostCyc).toBe(0);
  });

  it('keeps 64-bit TSC values exact across borrow and carry', () => {
    const c = config({ mtcFreq: 0, cpuid15Eax: 1, cpuid15Ebx: 1 });
    const t = new TimeTracker();
    const start = (1n << 55n) + 0x5n; // beyond 2^53
    t.onTsc(tsc(start));
    t.onTma(tma(0x10, 0x8), c);
    t.onMtc(mtc(0x20), c);
    expect(t.tscBigInt()).toBe(start - 8n + 0x10n);
  });

  it('copies state exactly', () => {
    const c = config({ mtcFreq: 4, cpuid15Eax: 2, cpuid15Ebx: 1 });
    const a = new TimeTracker();
    a.onTsc(tsc(0x1000n));
    a.onTma(tma(0x12, 6), c);
    const b = new TimeTracker();
    b.copyFrom(a);
    a.onMtc(mtc(2), c);
    b.onMtc(mtc(2), c);
    expect(b.tscBigInt()).toBe(a.tscBigInt());
  });
});

describe('TimeCalibration', () => {
  it('calibrates from CBR with the nominal ratio: fcr = nomFreq / cbr', () => {
    const tc = new TimeCalibration();
    expect(tc.fcr()).toBe(-ErrorCode.NoTime);
    expect(tc.onHeaderCbr(cbr(2), config())).toBe(0); // no nomFreq: nothing
    expect(tc.fcr()).toBe(-ErrorCode.NoTime);
    expect(tc.onHeaderCbr(cbr(2), config({ nomFreq: 4 }))).toBe(0);
    expect(tc.fcr()).toBe(512);
    expect(tc.onHeaderCbr(cbr(0), config({ nomFreq: 4 }))).toBe(-ErrorCode.BadPacket);
  });

  it('calibrates from cycles between two TSCs in PSB+', () => {
    const tc = new TimeCalibration();
    tc.onHeaderTsc(tsc(0xa0000n));
    tc.onCyc(cyc(0x100));
    expect(tc.onHeaderTsc(tsc(0xa0200n))).toBe(0);
    // 0x200 TSC ticks / 0x100 cycles = 2.0.
    expect(tc.fcr()).toBe(512);
  });

  it('calibrates from cycles between two MTCs', () => {
    const c = config({ mtcFreq: 0, cpuid15Eax: 1, cpuid15Ebx: 4 });
    const tc = new TimeCalibration();
    tc.onMtc(mtc(2), c);
    tc.onCyc(cyc(3));
    tc.onCyc(cyc(1));
    expect(tc.onMtc(mtc(3), c)).toBe(0);
    // 1 CTC tick = 4 TSC ticks over 4 cycles: 1.0.
    expect(tc.fcr()).toBe(256);
    expect(tc.lostMtc).toBe(0);
  });

  it('SKL168: skips the first MTC after PSB when an MTC was lost', () => {
    const errata = errataFor(parseCpu('6/78')!) as Errata;
    const c = config({ mtcFreq: 0, cpuid15Eax: 1, cpuid15Ebx: 4, errata });
    const tc = new TimeCalibration();
    tc.onMtc(mtc(1), c);
    tc.onPsb(c);
    tc.onCyc(cyc(8));
    // CTC 1 -> 3: two MTC periods, one MTC lost.
    expect(tc.onMtc(mtc(3), c)).toBe(0);
    expect(tc.fcr()).toBe(-ErrorCode.NoTime);
    expect(tc.lostMtc).toBe(1);
    // Without the erratum the same packets calibrate: 8 TSC ticks / 8 cycles.
    const plain = new TimeCalibration();
    const c2 = config({ mtcFreq: 0, cpuid15Eax: 1, cpuid15Ebx: 4 });
    plain.onMtc(mtc(1), c2);
    plain.onPsb(c2);
    plain.onCyc(cyc(8));
    plain.onMtc(mtc(3), c2);
    expect(plain.fcr()).toBe(256);
  });

  it('keeps the ratio on OVF with keepTcalOnOvf, drops it otherwise', () => {
    const c = config({ nomFreq: 4 });
    const keep = new Timing({ ...c, flags: { ...c.flags, keepTcalOnOvf: true } });
    const reset = new Timing(c);
    for (const t of [keep, reset]) {
      t.onCbr(cbr(2), true);
      expect(t.tcal.fcr()).toBe(512);
      t.onOvf();
    }
    expect(keep.tcal.fcr()).toBe(512);
    expect(reset.tcal.fcr()).toBe(-ErrorCode.NoTime);
  });
});

/** ptdump options and decoder config from a ptdump argv. */
function parsePtdumpArgv(argv: string[]): { cfg: DecoderConfig; options: ConstructorParameters<typeof PtdumpTimeTracking>[1] } {
  const cfg = defaultConfig();
  const options = {
    showTime: false, showTcal: false, timeDelta: false, noTcal: false,
    noWallClock: false, keepTcalOnOvf: false, noCyc: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => Number(argv[++i]);
    switch (a) {
      case '--time': options.showTime = true; break;
      case '--tcal': options.showTcal = true; break;
      case '--time-delta': options.timeDelta = true; break;
      case '--no-tcal': options.noTcal = true; break;
      case '--no-wall-clock': options.noWallClock = true; break;
      case '--keep-tcal-on-ovf': options.keepTcalOnOvf = true; break;
      case '--no-cyc': options.noCyc = true; break;
      case '--mtc-freq': cfg.mtcFreq = num(); break;
      case '--nom-freq': cfg.nomFreq = num(); break;
      case '--cpuid-0x15.eax': cfg.cpuid15Eax = num(); break;
      case '--cpuid-0x15.ebx': cfg.cpuid15Ebx = num(); break;
      case '--cpu': {
        cfg.cpu = parseCpu(argv[++i]!)!;
        const errata = errataFor(cfg.cpu);
        if (typeof errata !== 'number') cfg.errata = errata;
        break;
      }
      default:
        if (a.startsWith('--')) throw new Error(`unhandled option ${a}`);
    }
  }
  return { cfg, options };
}

interface ExpectedLine {
  offset: number;
  diags: string[];
  /** "tsc +3f0", "fcr +0.250", or '' without a column. */
  column: string;
}

/** The packet lines of a ptdump .exp, with the diagnostics printed before each. */
function parseExp(text: string): ExpectedLine[] {
  const out: ExpectedLine[] = [];
  let diags: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('[')) {
      diags.push(line);
      continue;
    }
    const tokens = line.split(/\s+/);
    const n = tokens.length;
    const column = n >= 4 && (tokens[n - 2] === 'tsc' || tokens[n - 2] === 'fcr') ? `${tokens[n - 2]} ${tokens[n - 1]}` : '';
    out.push({ offset: parseInt(tokens[0]!, 16), diags, column });
    diags = [];
  }
  return out;
}

interface Case {
  name: string;
  pt: string;
  ptdump?: { exp: string; argv: string[] };
}

const manifest = JSON.parse(readFileSync(join(VECTORS, 'MANIFEST.json'), 'utf8')) as Case[];
const timingCases = manifest.filter((c) => c.ptdump && c.ptdump.argv.some((a) => a === '--time' || a === '--tcal'));

describe('ptdump time column conformance', () => {
  it('finds the timing vectors', () => {
    expect(timingCases.length).toBeGreaterThanOrEqual(26);
  });

  for (const c of timingCases) {
    it(c.name, () => {
      const dir = join(VECTORS, c.name);
      const { cfg, options } = parsePtdumpArgv(c.ptdump!.argv);
      const expected = parseExp(readFileSync(join(dir, c.ptdump!.exp), 'utf8'));
      const buf = new Uint8Array(readFileSync(join(dir, c.pt)));
      const dec = new PacketDecoder(buf, { skd007: cfg.errata.skd007, skz84: cfg.errata.skz84 });
      expect(dec.syncForward()).toBe(0);

      const tracking = new PtdumpTimeTracking(cfg, options);
      const col = new TimeColumn();
      const pkt = new Packet();
      let k = 0;
      let columns = 0;
      for (;;) {
        const size = dec.next(pkt);
        if (size === -ErrorCode.Eos) break;
        expect(size, `decode at ${dec.offset}`).toBeGreaterThan(0);
        tracking.update(pkt, col);

        const diags: string[] = [];
        for (let i = 0; i < col.diagCount; i++) {
          const code = col.diagCode[i]!;
          const prefix = `${pkt.offset.toString(16)}: ${col.diagMessage[i]}`;
          diags.push(code ? `[${prefix}: ${errorMessage(code)}]` : `[${prefix}]`);
        }
        const column = col.kind === TimeColumnKind.None ? '' : `${timeColumnId(col)} ${formatTimeColumn(col)}`;

        // ptdump hides CYC packets with --no-cyc; it does not track them either.
        if (pkt.type === PacketType.Cyc && options.noCyc) {
          expect(diags).toEqual([]);
          expect(column).toBe('');
          continue;
        }
        const exp = expected[k++];
        expect(exp, `packet at ${pkt.offset.toString(16)} not in .exp`).toBeDefined();
        expect(pkt.offset, `line ${k}`).toBe(exp!.offset);
        expect(diags, `diagnostics at ${pkt.offset.toString(16)}`).toEqual(exp!.diags);
        expect(column, `time column at ${pkt.offset.toString(16)}`).toBe(exp!.column);
        if (column) columns++;
      }
      expect(k).toBe(expected.length);
      expect(columns).toBeGreaterThan(0);
    });
  }
});
