/**
 * The image layer for perf_event sideband (libipt's pt_sb_session images as
 * ptxed uses them): one kernel image, which `--raw`/`--elf` fill, and one
 * image per process context. A new context starts as a copy of the kernel
 * image; MMAP records add file sections to it; a context switch makes the
 * flow decoder use that context's image.
 */
import { ErrorCode, PtError } from '../packets/errors.js';
import { EventType, type PtEvent } from '../events/event.js';
import { ANY_ASID, isExactIp } from './address-space.js';
import { Image } from './image.js';
import type { ByteSourceCache } from './section.js';

/**
 * What the perf_event sideband session (sources/perf-event/sideband-session.ts)
 * needs from the image layer, which implements it here. Contexts (libipt's
 * pt_sb_context) are process address spaces identified by a session-unique
 * id; a pid may get a new context (exec, fork) while the old one is still
 * being decoded, which is why the host works with context ids, not pids.
 * Calls returning a number return 0 or a negated ErrorCode; a failure is
 * printed as a sideband error and decoding continues.
 */
export interface SidebandImageHost {
  /** Create context `contextId` for `pid`, named `name` ("pid-<hex>"), as a copy of the kernel image. */
  createContext(contextId: number, pid: number, name: string): void;
  /** fork: add all sections of `parentId`'s image to `childId`'s image. */
  copyContext(childId: number, parentId: number): number;
  /** Map `size` bytes of `filename` from `fileOffset` at `vaddr` into the context's image. */
  mmap(contextId: number, filename: string, fileOffset: bigint, size: bigint, vaddr: bigint): number;
  /** Decode with this context's image from now on. */
  switchTo(contextId: number): number;
  /** The session no longer refers to the context; its image may be freed. */
  releaseContext(contextId: number): void;
}

/**
 * What the session needs from a decoder event to place context switches
 * (libipt looks at the event type and its IP to tell user from kernel).
 */
export enum SbEventKind {
  /** Events without a location: stop, vmcs, pwre, pwrx, cbr, mnt, tnt, ... */
  Other = 0,
  /** ip = enabled.ip (used even if suppressed). */
  Enabled,
  /** ip = disabled.ip, or suppressed. */
  Disabled,
  /** ip = async_disabled.ip, or suppressed; at = async_disabled.at. */
  AsyncDisabled,
  /** ip = async_branch.to. */
  AsyncBranch,
  /** Synchronous paging (MOV CR3): in the kernel. */
  Paging,
  /** ip = async_paging.ip, or suppressed. */
  AsyncPaging,
  /** ip = tip.ip. */
  Tip,
  /**
   * Events whose own IP tells the location unless suppressed: overflow,
   * exec mode, tsx, exstop, mwait, ptwrite, tick, iflags, interrupt, iret,
   * smi, rsm, init, vmentry, vmexit, shutdown, uintr, uiret.
   */
  IpEvent,
}

export interface SidebandTraceEvent {
  kind: SbEventKind;
  /** The event's TSC; 0n if it has none. */
  tsc: bigint;
  ip: bigint;
  ipSuppressed: boolean;
  /** AsyncDisabled only: where tracing was disabled. */
  at: bigint;
}

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
      return type >= EventType.Interrupt && type <= EventType.Syscall ? SbEventKind.IpEvent : SbEventKind.Other;
  }
}
