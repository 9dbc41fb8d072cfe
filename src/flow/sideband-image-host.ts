/**
 * The image layer for perf_event sideband (libipt's pt_sb_session images as
 * ptxed uses them): one kernel image, which `--raw`/`--elf` fill, and one
 * image per process context. A new context starts as a copy of the kernel
 * image; MMAP records add file sections to it; a context switch makes the
 * flow decoder use that context's image.
 */
import { ErrorCode, PtError } from '../packets/errors.js';
import { EventType, type PtEvent } from '../events/event.js';
import { isCfeEvent } from '../events/event-decoder.js';
import {
  SbEventKind,
  type SidebandImageHost,
  type SidebandTraceEvent,
} from '../sources/perf-event/sideband-session.js';
import { ANY_ASID, isExactIp } from './address-space.js';
import { Image } from './image.js';
import type { ByteSourceCache } from './section.js';

export class ContextImages implements SidebandImageHost {
  private readonly contexts = new Map<number, Image>();
  private current = 0;

  /**
   * @param kernel the image `--raw`/`--elf` loaded (libipt's kernel image)
   * @param files file cache shared with the command's own image loading
   * @param nextIsid hands out image section identifiers
   * @param use called with the image to decode with after a switch
   */
  constructor(
    readonly kernel: Image,
    private readonly files: ByteSourceCache,
    private readonly nextIsid: () => number,
    private readonly use: (image: Image) => void,
  ) {}

  createContext(contextId: number, _pid: number, name: string): void {
    const image = new Image(name);
    image.copyFrom(this.kernel);
    this.contexts.set(contextId, image);
  }

  copyContext(childId: number, parentId: number): number {
    const child = this.contexts.get(childId);
    const parent = this.contexts.get(parentId);
    if (!child || !parent) return -ErrorCode.Internal;
    child.copyFrom(parent);
    return 0;
  }

  mmap(contextId: number, filename: string, fileOffset: bigint, size: bigint, vaddr: bigint): number {
    const image = this.contexts.get(contextId);
    if (!image) return -ErrorCode.Internal;
    const base = Number(BigInt.asIntN(64, vaddr));
    if (!isExactIp(base)) return -ErrorCode.Invalid;
    try {
      return image.addFile(this.files, filename, Number(fileOffset), Number(size), base, ANY_ASID, this.nextIsid());
    } catch (e) {
      if (e instanceof PtError) return -e.code;
      throw e;
    }
  }

  switchTo(contextId: number): number {
    const image = this.contexts.get(contextId);
    if (!image) return -ErrorCode.Internal;
    this.current = contextId;
    this.use(image);
    return 0;
  }

  releaseContext(contextId: number): void {
    // The image in use stays valid until the next switch.
    if (contextId !== this.current) this.contexts.delete(contextId);
  }
}

/** Fill `out` with what the sideband session needs from decoder event `ev`. */
export function sidebandEventOf(ev: PtEvent, out: SidebandTraceEvent): SidebandTraceEvent {
  out.kind = sidebandKindOf(ev.type);
  out.tsc = (BigInt(ev.tscHi >>> 0) << 32n) | BigInt(ev.tscLo >>> 0);
  out.ip = BigInt.asUintN(64, BigInt(ev.ip));
  out.at = BigInt.asUintN(64, BigInt(ev.at));
  out.ipSuppressed = ev.ipSuppressed;
  return out;
}

function sidebandKindOf(type: EventType): SbEventKind {
  switch (type) {
    case EventType.Enabled:
      return SbEventKind.Enabled;
    case EventType.Disabled:
      return SbEventKind.Disabled;
    case EventType.AsyncDisabled:
      return SbEventKind.AsyncDisabled;
    case EventType.AsyncBranch:
      return SbEventKind.AsyncBranch;
    case EventType.Paging:
      return SbEventKind.Paging;
    case EventType.AsyncPaging:
      return SbEventKind.AsyncPaging;
    case EventType.Tip:
      return SbEventKind.Tip;
    case EventType.Overflow:
    case EventType.ExecMode:
    case EventType.Tsx:
    case EventType.Exstop:
    case EventType.Mwait:
    case EventType.Ptwrite:
    case EventType.Tick:
    case EventType.Iflags:
      return SbEventKind.IpEvent;
    default:
      // Event tracing events carry their IP, too.
      return isCfeEvent(type) ? SbEventKind.IpEvent : SbEventKind.Other;
  }
}
