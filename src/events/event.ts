/**
 * The event model shared by the event, query, instruction and block
 * decoders (libipt's `struct pt_event`, newest version, plus the event
 * tracing events of Intel PT's CFE/EVD packets).
 *
 * One flat, reusable struct instead of a tagged union: decoders own their
 * instances and overwrite them, so nothing is allocated per event. Which
 * fields mean something depends on {@link PtEvent.type} (see each field).
 *
 * Addresses are signed doubles (see flow/address-space.ts). 64-bit payloads
 * (PTWRITE, MNT, EVD data) are uint32 `hi`/`lo` pairs.
 */
import type { ExecMode } from '../packets/exec-mode.js';

/** Event kinds (libipt's `pt_event_type`, same order, then newer ones). */
export enum EventType {
  /** Tracing was enabled (TIP.PGE, or a PSB+ with a FUP). `ip`: where it resumes. */
  Enabled = 0,
  /** Tracing was disabled synchronously (TIP.PGD). `ip` unless suppressed. */
  Disabled,
  /** Tracing was disabled asynchronously (FUP + TIP.PGD). `at`: source, `ip`: destination. */
  AsyncDisabled,
  /** An asynchronous branch (interrupt, FUP + TIP). `at`: from, `ip`: to. */
  AsyncBranch,
  /** A synchronous CR3 change (PIP binding to MOV CR3 or a far branch). `cr3`, `nonRoot`. */
  Paging,
  /** An asynchronous CR3 change (PIP between FUP and TIP). `cr3`, `nonRoot`, `ip`. */
  AsyncPaging,
  /** Trace overflow (OVF). `ip`: where tracing resumed, unless suppressed. */
  Overflow,
  /** Execution mode change (MODE.Exec). `mode`, `ip`. */
  ExecMode,
  /** Transaction state change (MODE.TSX). `speculative`, `aborted`, `ip`. */
  Tsx,
  /** Trace stop (TraceStop). */
  Stop,
  /** A synchronous VMCS change. `base`. */
  Vmcs,
  /** An asynchronous VMCS change. `base`, `ip`. */
  AsyncVmcs,
  /** Execution stopped (EXSTOP). `ip` unless suppressed. */
  Exstop,
  /** MWAIT (MWAIT packet). `hints`, `ext`, `ip`. */
  Mwait,
  /** Power state entry (PWRE). `state`, `subState`, `hw`. */
  Pwre,
  /** Power state exit (PWRX). `last`, `deepest`, `interrupt`, `store`, `autonomous`. */
  Pwrx,
  /** PTWRITE (PTW). `payloadHi/Lo`, `size`, `ip`. */
  Ptwrite,
  /** Timing update synthesized by the flow decoders (`--event:tick`). `ip`. */
  Tick,
  /** Core:bus ratio (CBR). `ratio`. */
  Cbr,
  /** Maintenance (MNT). `payloadHi/Lo`. */
  Mnt,
  /** Internal to the query layer: an indirect branch target (TIP). `ip`. */
  Tip,
  /** Internal to the query layer: conditional branch bits (TNT). `tntBits`, `tntSize`. */
  Tnt,
  /** Interrupt flag change (MODE.Exec IF bit with event tracing). `iflag`, `ip`. */
  Iflags,
  /** Interrupt or exception (CFE INTR / VMEXIT_INTR). `vector`, `cr2` (EVD), `ip`. */
  Interrupt,
  /** IRET (CFE IRET). `ip`. */
  Iret,
  /** SMI (CFE SMI). `ip`. */
  Smi,
  /** RSM (CFE RSM). `ip`. */
  Rsm,
  /** INIT (CFE INIT). `ip`. */
  Init,
  /** SIPI (CFE SIPI). `vector`. */
  Sipi,
  /** VM entry (CFE VMENTRY). `ip`. */
  Vmentry,
  /** VM exit (CFE VMEXIT / VMEXIT_INTR). `vector` if any, `vmxr`, `vmxq` (EVD), `ip`. */
  Vmexit,
  /** Shutdown (CFE SHUTDOWN). `ip`. */
  Shutdown,
  /** User interrupt (CFE UINTR). `vector`, `ip`. */
  Uintr,
  /** UIRET (CFE UIRET). `ip`. */
  Uiret,
  /** Software interrupt (CFE SWINTR). `vector`, `ip`. */
  Swintr,
  /** SYSCALL (CFE SYSCALL). `ip`. */
  Syscall,
  /**
   * Trigger (TRIG). `trbv`, `mult`; `ip` unless suppressed, and `icnt`
   * instructions after it (the flow decoders count them down to 0).
   */
  Trig,
  /** Not an event: what a decoder holds after an error (libipt fills it with 0xff). */
  Invalid,
  /**
   * Internal to the event layer (libipt's ptev_ignore): binds a packet that
   * makes no event, such as an unknown CFE's FUP or a MODE.Exec that changes
   * nothing, and is dropped at its binding packet.
   */
  Ignore,
}

/** A decoder event. Reused; copy with {@link copyEvent} to keep one. */
export class PtEvent {
  type: EventType = EventType.Invalid;
  /** A PSB+ status update rather than a change (ptxed does not print those). */
  statusUpdate = false;
  /** `ip` is not available. */
  ipSuppressed = false;
  /** `tscHi/Lo` hold wall-clock time (a TSC has been seen). */
  hasTsc = false;
  tscHi = 0;
  tscLo = 0;
  lostMtc = 0;
  lostCyc = 0;

  /** The event's main address (see {@link EventType}). */
  ip = 0;
  /** AsyncDisabled/AsyncBranch: the address the event interrupted. */
  at = 0;
  /** Enabled: tracing resumed where it had been disabled. */
  resumed = false;

  mode = 0 as ExecMode;
  speculative = false;
  aborted = false;
  /** Paging: the new CR3 (unsigned). */
  cr3 = 0;
  nonRoot = false;
  /** Vmcs: the VMCS base address (unsigned). */
  base = 0;

  hints = 0;
  ext = 0;
  state = 0;
  subState = 0;
  hw = false;
  last = 0;
  deepest = 0;
  interrupt = false;
  store = false;
  autonomous = false;

  /** Ptwrite/Mnt payload. */
  payloadHi = 0;
  payloadLo = 0;
  /** Ptwrite: payload size in bytes. */
  size = 0;
  ratio = 0;
  tntBits = 0;
  tntSize = 0;

  /** Iflags: the new IF value. */
  iflag = false;
  /** CFE vector (interrupt, SIPI, UINTR, SWINTR); `hasVector` says if present. */
  vector = 0;
  hasVector = false;
  /** EVD data attached to a CFE event. */
  hasCr2 = false;
  cr2Hi = 0;
  cr2Lo = 0;
  hasVmxr = false;
  vmxrHi = 0;
  vmxrLo = 0;
  hasVmxq = false;
  vmxqHi = 0;
  vmxqLo = 0;
  /** Trig: trigger bit vector, several triggers (MULT), and instruction count. */
  trbv = 0;
  mult = false;
  icnt = 0;

  /** Reset every field (libipt zeroes a queue slot before use). */
  clear(): void {
    copyEvent(this, BLANK);
  }
}

/**
 * Copy `src` into `dst` (C struct assignment): a field-by-field copy
 * generated from the struct's own fields, so it follows additions to it.
 * `Object.assign` takes about 4 µs on this 49-field struct in Node 20; this
 * takes about 50 ns, and every event is copied a few times on its way
 * (event decoder → query decoder → flow decoder → caller).
 */
export const copyEvent = new Function(
  'dst',
  'src',
  Object.keys(new PtEvent()).map((k) => `dst.${k} = src.${k};`).join('\n') + '\nreturn dst;',
) as (dst: PtEvent, src: PtEvent) => PtEvent;

const BLANK = new PtEvent();

/**
 * Copy the fields a branch event (TNT or TIP) sets, and the time: what the
 * layers above read of one. Other fields of `dst` keep stale values, which
 * no reader of a TNT or TIP event looks at; these come once per few
 * branches, so the full copy is worth avoiding.
 */
export function copyBranchEvent(dst: PtEvent, src: PtEvent): PtEvent {
  dst.type = src.type;
  dst.statusUpdate = src.statusUpdate;
  dst.ipSuppressed = src.ipSuppressed;
  dst.hasTsc = src.hasTsc;
  dst.tscHi = src.tscHi;
  dst.tscLo = src.tscLo;
  dst.lostMtc = src.lostMtc;
  dst.lostCyc = src.lostCyc;
  dst.ip = src.ip;
  dst.tntBits = src.tntBits;
  dst.tntSize = src.tntSize;
  return dst;
}

/** Reset every field of `ev`. */
export function resetEvent(ev: PtEvent): void {
  copyEvent(ev, BLANK);
}
