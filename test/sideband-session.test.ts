import { readFileSync } from 'node:fs';
import { join, isAbsolute } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PacketDecoder } from '../src/packets/decoder.js';
import { ErrorCode, PtError } from '../src/packets/errors.js';
import { Packet } from '../src/packets/packet.js';
import { PacketType } from '../src/packets/packet-type.js';
import {
  SidebandOptionError,
  SidebandOptionParser,
  parseCUnsigned,
  parseNumberArg,
  splitFileRange,
} from '../src/sources/perf-event/options.js';
import {
  SbEventKind,
  SidebandSession,
  type SidebandImageHost,
  type SidebandTraceEvent,
} from '../src/sources/perf-event/sideband-session.js';

const VECTORS = '/work/shared/vectors/libipt';

interface ManifestEntry {
  name: string;
  pt: string;
  suite?: string;
  ptdump: { exp: string; argv: string[] } | null;
  ptxed: { exp: string; argv: string[] } | null;
}

const manifest = JSON.parse(readFileSync(join(VECTORS, 'MANIFEST.json'), 'utf8')) as ManifestEntry[];
const peventCases = manifest.filter((e) => e.suite === 'pevent');

/** Collects written text. */
class Capture {
  text = '';
  write(s: string): void {
    this.text += s;
  }
}

/** Parse the sideband options out of a tool's argv (other options are skipped). */
function parseArgs(tool: 'dump' | 'flow', argv: readonly string[]) {
  const parser = new SidebandOptionParser(tool);
  const others: string[] = [];
  for (let i = 0; i < argv.length; ) {
    const n = parser.tryParse(argv, i);
    if (n) {
      i += n;
      continue;
    }
    others.push(argv[i]!);
    ++i;
  }
  return { parser, others };
}

const inDir = (dir: string) => (p: string) => (isAbsolute(p) ? p : join(dir, p));

/** A diff -ub like normalization: runs of blanks collapse, trailing blanks go. */
const norm = (line: string): string => line.replace(/[ \t]+/g, ' ').replace(/ $/, '');

const isSidebandLine = (line: string): boolean =>
  /PERF_RECORD_|UNKNOWN/.test(line) || /^\s/.test(line) || /^\[context: /.test(line) || / sideband (error|warning): /.test(line);

/** The TSC values of the trace, in order, read with our packet decoder. */
function traceTscs(pt: Uint8Array): bigint[] {
  const dec = new PacketDecoder(pt);
  const pkt = new Packet();
  const out: bigint[] = [];
  if (dec.syncForward() < 0) return out;
  while (dec.next(pkt) > 0) {
    if (pkt.type === PacketType.Tsc) out.push((BigInt(pkt.hi) << 32n) | BigInt(pkt.lo));
  }
  return out;
}

describe('ptdump-style sideband printing on the pevent vectors', () => {
  for (const c of peventCases) {
    if (!c.ptdump) continue;
    it(c.name, () => {
      const dir = join(VECTORS, c.name);
      const { parser, others } = parseArgs('dump', c.ptdump!.argv);
      // Everything but the trace file is a sideband option in these cases.
      expect(others).toEqual([c.pt]);
      expect(parser.active).toBe(true);

      const out = new Capture();
      const diag = new Capture();
      const sb = SidebandSession.create(parser.config, {
        out,
        diag,
        readFile: (p) => readFileSync(inDir(dir)(p)),
      });

      // Walk the packets like ptdump: timing packets update the time, then
      // due sideband is printed, then the packet's own line.
      const dec = new PacketDecoder(readFileSync(join(dir, c.pt)));
      const pkt = new Packet();
      expect(dec.syncForward()).toBe(0);
      let tsc = 0n;
      for (;;) {
        const size = dec.next(pkt);
        if (size === -ErrorCode.Eos) break;
        expect(size).toBeGreaterThan(0);
        switch (pkt.type) {
          case PacketType.Tsc:
            tsc = (BigInt(pkt.hi) << 32n) | BigInt(pkt.lo);
            sb.printUntil(tsc);
            break;
          case PacketType.Cbr:
          case PacketType.Tma:
          case PacketType.Mtc:
          case PacketType.Cyc:
            // Not in these vectors; estimating time here would need the time tracker.
            throw new Error(`unexpected timing packet at ${pkt.offset}`);
        }
        out.write(`PKT ${pkt.offset.toString(16)}\n`);
      }
      sb.flush();

      const got = out.text.trimEnd().split('\n').map(norm);
      const exp = readFileSync(join(dir, c.ptdump!.exp), 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => (isSidebandLine(l) ? norm(l) : `PKT ${BigInt('0x' + l.trim().split(/\s+/)[0]!).toString(16)}`));
      expect(got).toEqual(exp);
      expect(diag.text).toBe('');
    });
  }
});

/** A fake image layer: contexts with their mapped sections. */
class FakeHost implements SidebandImageHost {
  contexts = new Map<number, { pid: number; name: string; sections: string[] }>();
  released: number[] = [];
  current = 0;
  createContext(id: number, pid: number, name: string): void {
    this.contexts.set(id, { pid, name, sections: [] });
  }
  copyContext(child: number, parent: number): number {
    this.contexts.get(child)!.sections.push(...this.contexts.get(parent)!.sections);
    return 0;
  }
  mmap(id: number, filename: string, off: bigint, size: bigint, vaddr: bigint): number {
    this.contexts.get(id)!.sections.push(`${vaddr.toString(16)}+${size.toString(16)}@${off.toString(16)}:${filename}`);
    return 0;
  }
  switchTo(id: number): number {
    this.current = id;
    return 0;
  }
  releaseContext(id: number): void {
    this.released.push(id);
  }
  get currentContext() {
    return this.contexts.get(this.current);
  }
}

interface ScriptedEvent {
  /** The line ptxed prints for the event; undefined for status updates. */
  line?: string;
  kind: SbEventKind;
  /** Index into the trace's TSC packets. */
  tscIndex: number;
  ip?: bigint;
  suppressed?: boolean;
}

/**
 * The decoder events of each ptxed case (from the trace and the .exp's event
 * lines), with the expectations on the image layer after the last event.
 */
const FLOW_SCRIPTS: Record<string, { events: ScriptedEvent[]; check: (h: FakeHost) => void }> = {
  'pevent-comm_exec-mmap-tsc-iret': {
    events: [
      { kind: SbEventKind.Enabled, tscIndex: 0, ip: 0xffffffff80000000n },
      { line: '[tick]', kind: SbEventKind.IpEvent, tscIndex: 1, ip: 0xffffffff80000001n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 1, suppressed: true },
    ],
    check: (h) => {
      // The exec replaced pid 1's context; the switch happened in the kernel (at the tick).
      const cur = h.currentContext!;
      expect(cur.name).toBe('pid-1');
      expect(h.current).not.toBe(1);
      expect(cur.sections).toEqual([
        'ffffffff80000000+3@0:pevent-comm_exec-mmap-tsc-iret.bin',
        '1000+3@10:pevent-comm_exec-mmap-tsc-iret.bin',
      ]);
      expect(h.released).toEqual([1]);
    },
  },
  'pevent-mmap-tip_cached': {
    events: [
      { kind: SbEventKind.Enabled, tscIndex: 0, ip: 0x1000n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 0, suppressed: true },
    ],
    check: (h) => {
      expect(h.currentContext!.sections).toEqual([
        '1000+6@0:pevent-mmap-tip_cached.bin',
        'a000+1@100:pevent-mmap-tip_cached.bin',
      ]);
    },
  },
  'pevent-mmap_secondary-tsc': {
    events: [
      { kind: SbEventKind.Enabled, tscIndex: 0, ip: 0x1000n },
      { line: '[tick]', kind: SbEventKind.IpEvent, tscIndex: 1, ip: 0x1001n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 1, suppressed: true },
    ],
    check: (h) => {
      // The secondary channel's MMAP lands in the primary's current context.
      expect(h.currentContext!.sections).toEqual([
        '1000+6@0:pevent-mmap_secondary-tsc.bin',
        'a000+1@100:pevent-mmap_secondary-tsc.bin',
      ]);
    },
  },
  'pevent-split': {
    events: [
      { kind: SbEventKind.Enabled, tscIndex: 0, ip: 0x1000n },
      { line: '[tick]', kind: SbEventKind.IpEvent, tscIndex: 1, ip: 0x1007n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 1, suppressed: true },
    ],
    check: (h) => {
      expect(h.currentContext!.sections).toEqual(['1000+13@0:pevent-split.bin', '1008+2@100:pevent-split.bin']);
    },
  },
  'pevent-tip_pgd-mmap-tsc-tip_pge': {
    events: [
      { kind: SbEventKind.Enabled, tscIndex: 0, ip: 0x1000n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 0, suppressed: true },
      { line: '[resumed]', kind: SbEventKind.Enabled, tscIndex: 1, ip: 0x1003n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 1, suppressed: true },
    ],
    check: (h) => {
      expect(h.currentContext!.sections).toEqual([
        '1000+b@0:pevent-tip_pgd-mmap-tsc-tip_pge.bin',
        'a000+1@100:pevent-tip_pgd-mmap-tsc-tip_pge.bin',
      ]);
    },
  },
  'pevent-tip_pgd-switch_cpu_wide-tsc-tip_pge': {
    events: [
      { kind: SbEventKind.Enabled, tscIndex: 0, ip: 0x1000n },
      { line: '[tick]', kind: SbEventKind.IpEvent, tscIndex: 1, ip: 0x1003n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 1, suppressed: true },
      { line: '[enabled]', kind: SbEventKind.Enabled, tscIndex: 1, ip: 0x2000n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 1, suppressed: true },
    ],
    check: (h) => {
      const cur = h.currentContext!;
      expect(cur.name).toBe('pid-2');
      expect(cur.sections).toEqual(['2000+2@10:pevent-tip_pgd-switch_cpu_wide-tsc-tip_pge.bin']);
    },
  },
  'pevent-warn': {
    events: [
      { kind: SbEventKind.Enabled, tscIndex: 0, ip: 0x1000n },
      { line: '[disabled]', kind: SbEventKind.Disabled, tscIndex: 0, suppressed: true },
    ],
    check: (h) => {
      // //anon, [vdso] without a vdso file and [kernel.kallsyms] map nothing;
      // without ITRACE_START there is no switch away from the --raw image.
      expect(h.current).toBe(0);
      expect([...h.contexts.values()]).toEqual([{ pid: 1, name: 'pid-1', sections: [] }]);
    },
  },
};

describe('ptxed-style sideband on the pevent vectors', () => {
  for (const c of peventCases) {
    if (!c.ptxed) continue;
    it(c.name, () => {
      const script = FLOW_SCRIPTS[c.name];
      expect(script, `no event script for ${c.name}`).toBeDefined();
      const dir = join(VECTORS, c.name);
      const { parser } = parseArgs('flow', c.ptxed!.argv);
      const tscs = traceTscs(readFileSync(join(dir, c.pt)));

      const out = new Capture();
      const diag = new Capture();
      const host = new FakeHost();
      const sb = SidebandSession.create(parser.config, {
        out,
        diag,
        host,
        readFile: (p) => readFileSync(inDir(dir)(p)),
        readHead: (p, n) => readFileSync(inDir(dir)(p)).subarray(0, n),
      });
      for (const e of script!.events) {
        if (e.line) out.write(e.line + '\n');
        const ev: SidebandTraceEvent = {
          kind: e.kind,
          tsc: tscs[e.tscIndex]!,
          ip: e.ip ?? 0n,
          ipSuppressed: e.suppressed ?? false,
          at: 0n,
        };
        expect(ev.tsc).toBeDefined();
        sb.onEvent(ev);
      }

      const got = out.text.trimEnd().split('\n').map(norm);
      const exp = readFileSync(join(dir, c.ptxed!.exp), 'utf8')
        .trimEnd()
        .split('\n')
        .filter((l) => !/^[0-9a-f]{16}$/.test(l.trim()))
        .map(norm);
      expect(got).toEqual(exp);
      expect(diag.text).toBe('');
      script!.check(host);
    });
  }
});

/** Build .sb bytes: records of {type, misc, body bytes}, each followed by a TIME sample. */
function sbFile(records: { type: number; misc?: number; body: number[]; time?: bigint }[]): Uint8Array {
  const bytes: number[] = [];
  for (const r of records) {
    const sample = r.time === undefined ? [] : u64(r.time);
    const size = 8 + r.body.length + sample.length;
    bytes.push(...u32(r.type), ...u16(r.misc ?? 0), ...u16(size), ...r.body, ...sample);
  }
  return Uint8Array.from(bytes);
}
const u16 = (v: number) => [v & 0xff, (v >> 8) & 0xff];
const u32 = (v: number) => [...u16(v & 0xffff), ...u16(v >>> 16)];
const u64 = (v: bigint) => [...u32(Number(v & 0xffffffffn)), ...u32(Number(v >> 32n))];
const itraceStart = (pid: number, time: bigint) => ({ type: 12, body: [...u32(pid), ...u32(pid)], time });

function sessionFor(files: Record<string, Uint8Array>, argv: string[], tool: 'dump' | 'flow' = 'dump') {
  const { parser } = parseArgs(tool, argv);
  const out = new Capture();
  const diag = new Capture();
  const host = new FakeHost();
  const sb = SidebandSession.create(parser.config, {
    out,
    diag,
    host,
    readFile: (p) => {
      const f = files[p];
      if (!f) throw new Error(`ENOENT: no such file or directory, open '${p}'`);
      return f;
    },
  });
  return { sb, out, diag, host };
}

describe('sideband session behaviour', () => {
  const base = ['--sb:compact', '--sb:offset', '--pevent:sample-type', '0x4'];

  it('orders records of several files by time, earlier file first on ties', () => {
    const a = sbFile([itraceStart(1, 5n), itraceStart(2, 9n)]);
    const b = sbFile([itraceStart(3, 5n), itraceStart(4, 7n)]);
    const { sb, out } = sessionFor({ a, b }, [...base, '--pevent:primary', 'a', '--pevent:secondary', 'b']);
    expect(sb.nextTsc).toBe(5n);
    sb.printUntil(4n);
    expect(out.text).toBe('');
    sb.printUntil(7n);
    expect(out.text.split('\n').map(norm)).toEqual([
      '0000000000000000 PERF_RECORD_ITRACE_START 1/1 { 5 }',
      '0000000000000000 PERF_RECORD_ITRACE_START 3/3 { 5 }',
      '0000000000000018 PERF_RECORD_ITRACE_START 4/4 { 7 }',
      '',
    ]);
    sb.flush();
    expect(out.text).toContain('PERF_RECORD_ITRACE_START  2/2  { 9 }');
    expect(sb.nextTsc).toBeUndefined();
  });

  it('converts perf time to TSC and applies --pevent:tsc-offset before printing with --sb:time', () => {
    const f = sbFile([itraceStart(1, 1000n)]);
    const { sb, out } = sessionFor({ f }, [
      ...base,
      '--sb:time',
      '--pevent:time-zero',
      '100',
      '--pevent:time-mult',
      '3',
      '--pevent:time-shift',
      '1',
      '--pevent:tsc-offset',
      '0x10',
      '--pevent:primary',
      'f',
    ]);
    // (1000 - 100) / 3 << 1 = 600; minus the offset 16 = 584 = 0x248.
    expect(sb.nextTsc).toBe(584n);
    sb.printUntil(583n);
    expect(out.text).toBe('');
    sb.printUntil(584n);
    expect(norm(out.text.trimEnd())).toBe('0000000000000000 0000000000000248 PERF_RECORD_ITRACE_START 1/1 { 3e8 }');
  });

  it('a negative tsc offset delays records', () => {
    const f = sbFile([itraceStart(1, 10n)]);
    const { sb } = sessionFor({ f }, [...base, '--pevent:tsc-offset', '-5', '--pevent:primary', 'f']);
    expect(sb.nextTsc).toBe(15n);
  });

  it('prints verbose records and nothing without print flags', () => {
    const f = sbFile([itraceStart(1, 2n)]);
    const v = sessionFor({ f }, ['--sb:verbose', '--pevent:sample-type', '4', '--pevent:primary', 'f']);
    v.sb.flush();
    expect(v.out.text).toBe('PERF_RECORD_ITRACE_START\n  pid: 1\n  tid: 1\n  time: 2\n');
    const q = sessionFor({ f }, ['--pevent:sample-type', '4', '--pevent:primary', 'f']);
    q.sb.flush();
    expect(q.out.text).toBe('');
  });

  it('a missing file is a one-line error naming the file and offset', () => {
    let err: unknown;
    try {
      sessionFor({}, [...base, '--pevent:primary', 'nope.sb']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PtError);
    expect((err as PtError).code).toBe(ErrorCode.BadFile);
    expect((err as PtError).message).toMatch(/^nope\.sb:0000000000000000: cannot load sideband file: ENOENT/);
    expect((err as PtError).message).not.toContain('\n');
  });

  it('a truncated last record ends the file with one diagnostic line', () => {
    const good = sbFile([itraceStart(1, 1n)]);
    const f = Uint8Array.from([...good, ...sbFile([itraceStart(2, 2n)]).subarray(0, 12)]);
    const { sb, out, diag } = sessionFor({ f }, [...base, '--pevent:primary', 'f']);
    sb.flush();
    expect(out.text.trimEnd().split('\n')).toHaveLength(1);
    expect(diag.text).toBe('[f:0000000000000018 sideband error: truncated record: size 24, 12 bytes left]\n');
  });

  it('a record smaller than its header is an error at its offset, and the file stops there', () => {
    const f = Uint8Array.from([...sbFile([itraceStart(1, 1n)]), ...u32(12), ...u16(0), ...u16(4), ...sbFile([itraceStart(2, 2n)])]);
    const { sb, out } = sessionFor({ f }, [...base, '--pevent:primary', 'f']);
    sb.flush();
    const lines = out.text.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('[f:0000000000000018 sideband error: decoder out of sync]');
  });

  it('a sample type that does not match the records is an error at the first record', () => {
    const f = sbFile([itraceStart(1, 1n)]);
    // TID|TIME expects 8 more bytes than the record has.
    const { sb, out, diag } = sessionFor({ f }, ['--sb', '--pevent:sample-type', '0x6', '--pevent:primary', 'f']);
    sb.flush();
    expect(out.text).toBe('[f:0000000000000000 sideband error: decoder out of sync]\n');
    expect(diag.text.split('\n')).toHaveLength(2);
    expect(diag.text).toContain('f:0000000000000000');
  });

  it('sample type bits outside sample_id do not change the record layout', () => {
    const f = sbFile([itraceStart(1, 1n)]);
    // IP | TIME | CALLCHAIN | bit 40: only TIME is in the sample_id trailer.
    const { sb, out } = sessionFor({ f }, ['--sb', '--pevent:sample-type', String(0x1n | 0x4n | 0x20n | (1n << 40n)), '--pevent:primary', 'f']);
    sb.flush();
    expect(norm(out.text.trimEnd())).toBe('PERF_RECORD_ITRACE_START 1/1 { 1 }');
  });

  it('a zero time_mult is a bad configuration at the first timed record', () => {
    const f = sbFile([itraceStart(1, 1n)]);
    const { out } = sessionFor({ f }, ['--pevent:sample-type', '4', '--pevent:time-mult', '0', '--pevent:primary', 'f']);
    expect(out.text).toBe('[f:0000000000000000 sideband error: bad configuration]\n');
  });

  it('fork copies the parent image; a thread fork changes nothing', () => {
    const mmap = (pid: number, addr: number, name: string) => {
      const fname = [...Buffer.from(name), 0];
      while (fname.length % 8) fname.push(0);
      return { type: 1, body: [...u32(pid), ...u32(pid), ...u64(BigInt(addr)), ...u64(0x10n), ...u64(0n), ...fname], time: 1n };
    };
    const fork = (pid: number, ppid: number, tid: number) => ({
      type: 7,
      body: [...u32(pid), ...u32(ppid), ...u32(tid), ...u32(ppid), ...u64(0n)],
      time: 2n,
    });
    const f = sbFile([itraceStart(1, 1n), mmap(1, 0x1000, 'a.bin'), fork(2, 1, 2), fork(1, 1, 7), mmap(2, 0x2000, 'b.bin')]);
    const { sb, host } = sessionFor({ f }, ['--pevent:sample-type', '4', '--pevent:primary', 'f'], 'flow');
    sb.onEvent({ kind: SbEventKind.Enabled, tsc: 5n, ip: 0x1000n, ipSuppressed: false, at: 0n });
    const byName = new Map([...host.contexts.values()].map((c) => [c.name, c.sections]));
    expect([...byName.keys()]).toEqual(['pid-1', 'pid-2']);
    expect(byName.get('pid-1')).toEqual(['1000+10@0:a.bin']);
    expect(byName.get('pid-2')).toEqual(['1000+10@0:a.bin', '2000+10@0:b.bin']);
  });

  it('postpones a context switch until the trace is in the kernel', () => {
    const switchOut = 0x2000;
    const sw = (misc: number, pid: number, time: bigint) => ({ type: 15, misc, body: [...u32(pid), ...u32(pid)], time });
    const f = sbFile([itraceStart(1, 1n), sw(switchOut, 2, 3n), sw(switchOut, 3, 6n)]);
    const { sb, host, out } = sessionFor(
      { f },
      ['--sb:switch', '--pevent:sample-type', '4', '--pevent:kernel-start', '0xffff800000000000', '--pevent:primary', 'f'],
      'flow',
    );
    const ev = (kind: SbEventKind, tsc: bigint, ip: bigint, ipSuppressed = false): SidebandTraceEvent => ({ kind, tsc, ip, ipSuppressed, at: 0n });
    sb.onEvent(ev(SbEventKind.Enabled, 1n, 0x1000n));
    const pid1 = host.current;
    expect(host.contexts.get(pid1)!.name).toBe('pid-1');
    sb.onEvent(ev(SbEventKind.IpEvent, 4n, 0x1010n)); // user space: keep waiting
    expect(host.current).toBe(pid1);
    sb.onEvent(ev(SbEventKind.AsyncBranch, 4n, 0xffffffff81000000n)); // entered the kernel
    expect(host.contexts.get(host.current)!.name).toBe('pid-2');
    // The switch to pid 3 is due at an event that leaves the kernel: the
    // previous location (kernel) is good enough to switch right away.
    sb.onEvent(ev(SbEventKind.Tip, 6n, 0x1000n));
    expect(host.contexts.get(host.current)!.name).toBe('pid-3');
    expect(out.text).toBe('[context: pid-1]\n[context: pid-2]\n[context: pid-3]\n');
  });

  it('warnings need --sb:warn; errors do not', () => {
    const lost = { type: 2, body: [...u64(1n), ...u64(5n)], time: 1n };
    const f = sbFile([lost]);
    const quiet = sessionFor({ f }, ['--pevent:sample-type', '4', '--pevent:primary', 'f'], 'flow');
    quiet.sb.onEvent({ kind: SbEventKind.Other, tsc: 1n, ip: 0n, ipSuppressed: true, at: 0n });
    expect(quiet.out.text).toBe('');
    const loud = sessionFor({ f }, ['--sb:warn', '--pevent:sample-type', '4', '--pevent:primary', 'f'], 'flow');
    loud.sb.onEvent({ kind: SbEventKind.Other, tsc: 1n, ip: 0n, ipSuppressed: true, at: 0n });
    expect(loud.out.text).toBe('[f:0000000000000000 sideband warning: sideband lost]\n');
  });
});

describe('sideband options', () => {
  it('parses numbers like strtoull base 0', () => {
    expect(parseCUnsigned('0x1f')).toEqual({ value: 31n, rest: '' });
    expect(parseCUnsigned('017')).toEqual({ value: 15n, rest: '' });
    expect(parseCUnsigned('42')).toEqual({ value: 42n, rest: '' });
    expect(parseCUnsigned('-1')).toEqual({ value: (1n << 64n) - 1n, rest: '' });
    expect(parseCUnsigned('0xffffffffffffffff')?.value).toBe((1n << 64n) - 1n);
    expect(parseCUnsigned('0x10000000000000000')).toBeUndefined();
    expect(parseCUnsigned('12ab')).toEqual({ value: 12n, rest: 'ab' });
  });

  it('rejects bad, missing and too big values with one-line messages', () => {
    expect(() => parseNumberArg('--pevent:time-zero', 'zero')).toThrow('--pevent:time-zero: bad argument: zero.');
    expect(() => parseNumberArg('--pevent:time-zero', undefined)).toThrow('--pevent:time-zero: missing argument.');
    expect(() => parseNumberArg('--pevent:time-zero', '--sb')).toThrow('missing argument');
    const p = new SidebandOptionParser('flow');
    expect(() => p.tryParse(['--pevent:time-shift', '0x10000'], 0)).toThrow('--pevent:time-shift: value too big: 0x10000.');
    expect(() => p.tryParse(['--pevent:time-mult', '0x100000000'], 0)).toThrow(SidebandOptionError);
    expect(() => p.tryParse(['--pevent:primary'], 0)).toThrow('--pevent:primary: missing argument.');
  });

  it('snapshots the --pevent settings at each file', () => {
    const { parser } = parseArgs('flow', [
      '--pevent:sample-type', '0x4', '--pevent:secondary', 'a.sb',
      '--pevent:sample-type', '0x6', '--pevent:kernel-start', '0xffffffff80000000', '--pevent:primary', 'b.sb:0x10-0x20',
    ]);
    const [a, b] = parser.config.files;
    expect(a).toMatchObject({ filename: 'a.sb', primary: false, sampleType: 4n, kernelStart: (1n << 64n) - 1n, begin: 0, end: 0 });
    expect(b).toMatchObject({ filename: 'b.sb', primary: true, sampleType: 6n, kernelStart: 0xffffffff80000000n, begin: 16, end: 32 });
  });

  it('knows which options belong to which tool', () => {
    expect(new SidebandOptionParser('dump').tryParse(['--sb:switch'], 0)).toBe(0);
    expect(new SidebandOptionParser('flow').tryParse(['--sb:switch'], 0)).toBe(1);
    expect(new SidebandOptionParser('flow').tryParse(['--pevent', 'x'], 0)).toBe(0);
    expect(new SidebandOptionParser('dump').tryParse(['--pevent', 'x'], 0)).toBe(2);
    expect(new SidebandOptionParser('dump').tryParse(['--cpu', '6/92'], 0)).toBe(0);
  });

  it('splits file ranges only when the suffix is a range', () => {
    expect(splitFileRange('a.sb:0x8')).toEqual({ filename: 'a.sb', begin: 8, end: 0 });
    expect(splitFileRange('a.sb:8-16')).toEqual({ filename: 'a.sb', begin: 8, end: 16 });
    expect(splitFileRange('c:/x.sb')).toEqual({ filename: 'c:/x.sb', begin: 0, end: 0 });
    expect(splitFileRange('name,time-zero=0x0.sb')).toEqual({ filename: 'name,time-zero=0x0.sb', begin: 0, end: 0 });
    expect(() => splitFileRange('a.sb:16-8')).toThrow('bad file a.sb:16-8: invalid argument.');
  });
});
