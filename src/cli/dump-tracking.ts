import { errataFor, noErrata, parseCpu } from '../packets/cpu.js';
import { defaultConfig, type DecoderConfig } from '../packets/config.js';
import type { Packet } from '../packets/packet.js';
import {
  formatTimeColumn, PtdumpTimeTracking, TimeColumn, TimeColumnKind, timeColumnId,
} from '../events/time.js';
import { diagLine, type PtdumpFormatter } from '../reports/ptdump-format.js';
import type { DumpOptions, DumpTracker } from './dump.js';
import { CliError, type LineWriter } from './output.js';
import { PacketType } from '../packets/packet-type.js';
import type { SidebandSession } from '../sources/perf-event/sideband-session.js';

function isTimingPacket(type: PacketType, noCyc: boolean): boolean {
  return type === PacketType.Tsc || type === PacketType.Cbr || type === PacketType.Tma ||
    type === PacketType.Mtc || (type === PacketType.Cyc && !noCyc);
}

/**
 * The decoder configuration for `dump`/`flow` from the CPU and timing
 * options. Returns the diagnostics ptdump prints before the trace (an
 * unknown CPU decodes without errata).
 */
export function configFromOptions(opts: {
  cpu?: string;
  mtcFreq?: number;
  nomFreq?: number;
  cpuid15Eax?: number;
  cpuid15Ebx?: number;
}): { config: DecoderConfig; preamble: string[] } {
  const config = defaultConfig();
  const preamble: string[] = [];
  if (opts.cpu !== undefined) {
    const cpu = parseCpu(opts.cpu);
    if (!cpu) throw new CliError(`--cpu: bad cpu: ${opts.cpu}.`);
    config.cpu = cpu;
    if (cpu.vendor !== 'unknown') {
      const errata = errataFor(cpu);
      if (typeof errata === 'number') {
        preamble.push(diagLine('failed to determine errata', 0, errata));
        config.errata = noErrata();
      } else config.errata = errata;
    }
  }
  if (opts.mtcFreq !== undefined) config.mtcFreq = opts.mtcFreq;
  if (opts.nomFreq !== undefined) config.nomFreq = opts.nomFreq;
  if (opts.cpuid15Eax !== undefined) config.cpuid15Eax = opts.cpuid15Eax;
  if (opts.cpuid15Ebx !== undefined) config.cpuid15Ebx = opts.cpuid15Ebx;
  return { config, preamble };
}

/**
 * ptdump's time and calibration columns (`--time`, `--tcal`), and the
 * perf_event sideband records printed as trace time passes them.
 */
export class DumpTimeTracker implements DumpTracker {
  private readonly tracking: PtdumpTimeTracking;
  private readonly col = new TimeColumn();
  /** Sideband text produced while handling the current packet. */
  private pending: string[] | null = null;
  private partial = '';
  readonly sink = {
    write: (text: string): void => {
      const parts = (this.partial + text).split('\n');
      this.partial = parts.pop()!;
      if (this.pending) this.pending.push(...parts);
      else this.direct?.(parts);
    },
  };
  private direct: ((lines: string[]) => void) | null = null;
  private session: SidebandSession | null = null;

  constructor(config: DecoderConfig, private readonly opts: DumpOptions, trackOnly = false) {
    const t = opts.track;
    this.tracking = new PtdumpTimeTracking(config, {
      showTime: t.time, showTcal: t.tcal, timeDelta: t.timeDelta, noTcal: t.noTcal,
      noWallClock: t.noWallClock, keepTcalOnOvf: t.keepTcalOnOvf, noCyc: opts.noCyc, trackTime: trackOnly,
    });
  }

  /** The estimated TSC so far as hi/lo, or null when there is none. */
  currentTsc(): { hi: number; lo: number } | null {
    return this.tracking.time.queryTsc() < 0 ? null : { hi: this.tracking.time.tsc[0]!, lo: this.tracking.time.tsc[1]! };
  }

  get time(): PtdumpTimeTracking {
    return this.tracking;
  }

  /**
   * Print sideband records as the trace's time reaches them: `create`
   * builds the session writing to {@link sink} (text outside a packet goes
   * straight to `out`).
   */
  attachSideband(create: () => SidebandSession, out: LineWriter): void {
    this.direct = (lines) => {
      for (const l of lines) out.line(l);
    };
    this.session = create();
  }

  onPacket(pkt: Packet, formatter: PtdumpFormatter): void {
    const col = this.col;
    this.tracking.update(pkt, col);
    for (let i = 0; i < col.diagCount; i++) {
      formatter.diags.push(diagLine(col.diagMessage[i]!, pkt.offset, col.diagCode[i]!));
    }
    if (col.kind !== TimeColumnKind.None) {
      formatter.line.trackingId = timeColumnId(col);
      formatter.line.trackingPayload = formatTimeColumn(col);
    }
    if (this.session && isTimingPacket(pkt.type, this.opts.noCyc)) {
      const time = this.tracking.time;
      const tsc = time.queryTsc() < 0 ? 0n : time.tscBigInt();
      this.pending = formatter.diags;
      try {
        this.session.printUntil(tsc);
      } finally {
        this.pending = null;
      }
    }
  }

  finish(): void {
    this.session?.flush();
  }

  reset(): void {
    this.tracking.reset();
  }
}
