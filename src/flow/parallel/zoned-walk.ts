/**
 * Decode one piece of a trace (from `range.from`, a PSB or 0) on its own,
 * reading on past its end for the overlap (piece-walk.ts), and record its
 * control-flow stream (flow-log.ts); the records of its body
 * (piece-zones.ts) go to consumers in this thread instead: only the head
 * and the tail are recorded, so a worker's memory is bounded by the
 * overlaps, not by the piece. In `keepAll` mode every
 * record is kept (and the zones still counted), for a consumer elsewhere
 * that must see the body after all.
 */
import type { DecoderConfig } from '../../packets/config.js';
import { packetStreamFor, type PacketStream } from '../../packets/packet-stream.js';
import type { PtEvent } from '../../events/event.js';
import { ControlFlowWalker, type FlowConsumer, type FlowStats, type GapKind, type TransferKind, type WalkCarry } from '../control-flow.js';
import type { Image } from '../image.js';
import { InsnDecoder } from '../insn-decoder.js';
import { FlowLogRecorder } from './flow-log.js';
import { OVERLAP_BYTES, OVERLAP_TRANSFERS } from './piece-walk.js';
import { PieceZones, Zone } from './piece-zones.js';
import type { SegmentRange } from './psb-split.js';

/** What a zoned walk gives (structured-clonable). */
export interface ZonedPiece extends SegmentRange {
  stats: FlowStats;
  /** The head's records then the tail's (every record in keepAll mode). */
  log: Float64Array;
  /** Records in the head and in the body (the body's are in `log` only in keepAll mode). */
  headRecords: number;
  bodyRecords: number;
  keptBody: boolean;
  carry: WalkCarry;
  endOffset: number;
}

/** Routes each record to the recorder or the body consumers by its zone. */
class ZoneRouter implements FlowConsumer {
  // The body consumers of each record kind (as the walker keeps its own sinks): no optional call per record.
  private readonly transferSinks: FlowConsumer[];
  private readonly eventSinks: FlowConsumer[];
  private readonly gapSinks: FlowConsumer[];
  private readonly errorSinks: FlowConsumer[];
  /** Whether body records go to the recorder too (no body consumers: keep every record). */
  private readonly keepAll: boolean;

  constructor(
    private readonly zones: PieceZones,
    private readonly log: FlowLogRecorder,
    body: readonly FlowConsumer[] | null,
    private readonly at: () => number,
    /** The packet stream and the whole-trace offset of its start: where it has read to bounds the record's offset. */
    private readonly packets: PacketStream,
    private readonly origin: number,
  ) {
    this.keepAll = body === null;
    const all = body ?? [];
    this.transferSinks = all.filter((c) => c.onTransfer !== undefined);
    this.eventSinks = all.filter((c) => c.onEvent !== undefined);
    this.gapSinks = all.filter((c) => c.onGap !== undefined);
    this.errorSinks = all.filter((c) => c.onError !== undefined);
  }

  /** Whether the next record is kept (head, tail, or keepAll) rather than given to the body consumers. */
  private keep(isTransfer: boolean): boolean {
    // Most records are deep in the body: there the packet stream's position settles the zone (the exact offset is a getter chain away).
    if (this.zones.stillBody(this.packets.offset + this.origin)) return this.keepAll;
    return this.zones.next(this.at(), isTransfer) !== Zone.Body || this.keepAll;
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, insns: number, cr3: number): void {
    if (this.keep(true)) this.log.onTransfer(kind, from, to, size, insns, cr3);
    else {
      const sinks = this.transferSinks;
      for (let i = 0; i < sinks.length; i++) sinks[i]!.onTransfer!(kind, from, to, size, insns, cr3);
    }
  }

  onEvent(ev: PtEvent): void {
    if (this.keep(false)) this.log.onEvent(ev);
    else for (const c of this.eventSinks) c.onEvent!(ev);
  }

  onGap(kind: GapKind, offset: number): void {
    if (this.keep(false)) this.log.onGap(kind);
    else for (const c of this.gapSinks) c.onGap!(kind, offset);
  }

  onError(code: number, offset: number, ip: number): void {
    if (this.keep(false)) this.log.onError(code, offset, ip);
    else for (const c of this.errorSinks) c.onError!(code, offset, ip);
  }
}

/**
 * A consumer that sees every record after the router (zones.zone is the
 * record's zone; `kept()` counts the records kept so far), and whether
 * the walk goes instruction by instruction (for a consumer that needs them).
 */
export interface ZonedObserver {
  mode: 'insn' | 'block';
  create(zones: PieceZones, kept: () => number): FlowConsumer;
}

/**
 * Decode `range` (reading on to `limit` for the overlap); body records go to `body` (null: keep them). `at()` given to the
 * body consumers' owner is the whole-trace offset of the current record.
 */
export function walkPieceZoned(
  trace: Uint8Array,
  range: SegmentRange,
  limit: number,
  config: DecoderConfig,
  image: Image,
  origin: number,
  body: (at: () => number) => readonly FlowConsumer[] | null,
  observer: ZonedObserver | null = null,
): ZonedPiece {
  const end = Math.max(range.to, Math.min(limit, origin + trace.length));
  const packets = packetStreamFor(trace.subarray(range.from - origin, end - origin), config);
  const decoder = new InsnDecoder(packets, config, image);
  decoder.traceOrigin = range.from;
  let walker: ControlFlowWalker | null = null;
  const at = (): number => decoder.offset + range.from;
  const log = new FlowLogRecorder(() => decoder.offset, range.from, () => walker!.walked);
  const zones = new PieceZones(range.from, range.to);
  const consumers = body(at);
  const router = new ZoneRouter(zones, log, consumers, at, packets, range.from);
  walker = new ControlFlowWalker(decoder, observer === null ? [router] : [router, observer.create(zones, () => log.length)]);
  const past = range.to - range.from + OVERLAP_BYTES;
  let after = 0;
  // (Checked after every transfer: the packet stream's position, which bounds the record's offset, rules most out cheaply.)
  const stopAt = end > range.to ? () => packets.offset > past && decoder.offset > past && ++after >= OVERLAP_TRANSFERS : null;
  const stats = walker.runPiece(observer?.mode ?? 'block', null, stopAt);
  return {
    ...range,
    stats,
    log: log.take(),
    headRecords: zones.headRecords,
    bodyRecords: zones.bodyRecords,
    keptBody: consumers === null,
    carry: walker.carry(),
    endOffset: decoder.offset + range.from,
  };
}
