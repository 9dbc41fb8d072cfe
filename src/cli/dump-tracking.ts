import { errataFor, noErrata, parseCpu } from '../packets/cpu.js';
import { defaultConfig, type DecoderConfig } from '../packets/config.js';
import type { Packet } from '../packets/packet.js';
import {
  formatTimeColumn, PtdumpTimeTracking, TimeColumn, TimeColumnKind, timeColumnId,
} from '../events/time.js';
import { diagLine, type PtdumpFormatter } from '../reports/ptdump-format.js';
import type { DumpOptions, DumpTracker } from './dump.js';
import { CliError } from './output.js';

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

/** ptdump's time and calibration columns (`--time`, `--tcal`). */
export class DumpTimeTracker implements DumpTracker {
  private readonly tracking: PtdumpTimeTracking;
  private readonly col = new TimeColumn();

  constructor(config: DecoderConfig, opts: DumpOptions, trackOnly = false) {
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
  }

  reset(): void {
    this.tracking.reset();
  }
}
