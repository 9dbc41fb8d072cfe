/**
 * The emulated CPU's trace unit: turns the executed instruction stream into
 * the Intel PT packets a real processor configured for user-only tracing
 * (CPL filter: ring 3 only) would have written (Intel SDM Vol. 3C, chapter
 * "Intel Processor Trace", sections "Packet Generation" and "Trace Filtering").
 *
 * Rules implemented:
 * - Conditional branches: one TNT bit each, buffered; a TNT-8 packet is
 *   written when 6 bits are pending (TNT-64 with up to 47 bits when
 *   `longTnt`), or earlier when another packet must follow them.
 * - Indirect jumps/calls, far branches and uncompressed returns: TIP with
 *   the target, compressed against the last IP as hardware does.
 * - Return compression: a near RET whose target is the top of the return
 *   stack is one taken TNT bit. The stack is modelled exactly as libipt's
 *   64-entry pt_retstack (push on every near call except `call $+0`, pop on
 *   a compressed RET only), and cleared at every PSB so that decoding from
 *   any PSB (snapshots) sees the same stack. It is also cleared at every
 *   uncompressed RET: libipt pops only on a compressed RET and perf's
 *   decoder on every RET, so after an uncompressed one (a signal handler's
 *   return, a longjmp) their stacks differ; with it empty, no later RET is
 *   compressed against an entry only one of them still holds, and both
 *   decode the stream alike. Clearing only ever makes the encoder compress
 *   less, never wrongly.
 * - Syscalls and other transfers to the kernel: TIP.PGD with the IP
 *   suppressed (the CPL filter hides the kernel); the return to user space
 *   is a TIP.PGE at the resumption IP.
 * - Asynchronous events (signals, faults, the recorder stopping): FUP at the
 *   IP of the next instruction that did not execute, then TIP.PGD.
 * - IP filters (`ranges`, like perf's address filters): leaving the ranges
 *   by a branch is a TIP.PGD with the target; leaving them by falling
 *   through is FUP + TIP.PGD; entering them is TIP.PGE.
 * - PSB+ (PSB, [TSC], [TMA], MODE.Exec, [FUP], PSBEND) after every
 *   `psbPeriod` bytes of trace, at the next instruction boundary. The FUP
 *   carries the IP of the next instruction when packet generation is
 *   enabled (SDM "Packet Stream Boundary (PSB)"). PSB resets the last IP.
 * - Timing (optional): a cycle counter that advances one cycle per executed
 *   instruction. TSC in PSB+ and before TIP.PGE; TMA in PSB+ and MTC each
 *   time CTC bit `mtcFreq` ticks (CTC = TSC / ctcRatio); CYC with the cycles
 *   elapsed before every TNT, TIP, FUP and paging packet.
 */
import { ipHi, ipLo } from '../../flow/address-space.js';
import { MAX_IMAGE_EPOCHS } from '../bundle/manifest.js';
import { ReturnStack } from '../../flow/return-stack.js';
import { IpCompression, PacketType } from '../../packets/packet-type.js';
import { Packet } from '../../packets/packet.js';
import { LastIp } from '../../packets/last-ip.js';
import { BranchKind, type BlockEnd } from './branch-kind.js';
import { IpSequenceHash } from './ip-sequence-hash.js';
import type { TraceOutput } from './trace-output.js';

export interface TimingSettings {
  tsc: boolean;
  mtc: boolean;
  cyc: boolean;
  /** MTC period exponent: an MTC each 2^mtcFreq CTC ticks (IA32_RTIT_CTL.MTCFreq). */
  mtcFreq: number;
  /** TSC ticks per CTC tick (CPUID.15H EBX/EAX with EAX = 1). */
  ctcRatio: number;
  /** TSC at the first instruction. */
  tscBase: number;
}

export interface EncoderSettings {
  /** Bytes of trace between PSBs (hardware default 4 KiB). */
  psbPeriod: number;
  retCompression: boolean;
  longTnt: boolean;
  /** IP filter ranges [from, to] (inclusive), empty for none. */
  ranges: ReadonlyArray<{ from: number; to: number }>;
  timing: TimingSettings;
  /** Keep per-PSB IP lists so a snapshot's sequence can be hashed. */
  snapshot: boolean;
}

export const DEFAULT_TIMING: TimingSettings = {
  tsc: false,
  mtc: false,
  cyc: false,
  mtcFreq: 3,
  ctcRatio: 2,
  tscBase: 0x1000000,
};

/** Traced IPs from one PSB on (snapshot mode). */
interface SegmentIps {
  offset: number;
  ips: Float64Array;
  count: number;
}

const TWO_32 = 4294967296;

export class PtEncoderSession {
  private readonly pkt = new Packet();
  private readonly retstack = new ReturnStack();
  private readonly rangeFrom: Float64Array;
  private readonly rangeTo: Float64Array;
  private readonly filtered: boolean;
  private readonly tntMax: number;

  /** PacketEn: tracing is on at the current instruction. */
  enabled = false;
  private started = false;
  /** The decoder's last IP as this trace leaves it (what the next IP packet compresses against). */
  private readonly lastIp = new LastIp();
  private tntBits = 0;
  private tntSize = 0;
  private lastPsb = 0;
  private psbPending = false;

  /** Instructions executed (traced or not): the cycle counter. */
  executed = 0;
  /** The traced instruction sequence (what a decoder must reproduce). */
  readonly traced = new IpSequenceHash();
  private readonly segments: SegmentIps[] = [];
  /**
   * Image epochs (code rewritten while it ran): from the PSB at `offset` on,
   * the image holds the address space's run-time images made before the
   * first rewrite at or after index `from`. The recorder asks for one where
   * a thread first runs code rewritten since its epoch began; the PSB+ is
   * where a decoder learns its position and switches images.
   */
  readonly epochs: { offset: number; from: number }[] = [];
  private epochPending = -1;
  private lastCycAt = 0;
  private lastMtcPeriod = -1;

  constructor(
    private readonly out: TraceOutput,
    private readonly settings: EncoderSettings,
  ) {
    this.rangeFrom = Float64Array.from(settings.ranges.map((r) => r.from));
    this.rangeTo = Float64Array.from(settings.ranges.map((r) => r.to));
    this.filtered = settings.ranges.length > 0;
    this.tntMax = settings.longTnt ? 47 : 6;
  }

  inFilter(ip: number): boolean {
    if (!this.filtered) return true;
    for (let i = 0; i < this.rangeFrom.length; i++) {
      if (ip >= this.rangeFrom[i] && ip <= this.rangeTo[i]) return true;
    }
    return false;
  }

  /** True if the whole range [from, to] is inside one filter range (no per-insn checks needed). */
  coveredByFilter(from: number, to: number): boolean {
    if (!this.filtered) return true;
    for (let i = 0; i < this.rangeFrom.length; i++) {
      if (from >= this.rangeFrom[i] && to <= this.rangeTo[i]) return true;
    }
    return false;
  }

  // --- instruction stream --------------------------------------------------

  /**
   * An instruction boundary: `ip` is about to execute. Writes a pending PSB+
   * and enables or disables packet generation as the filter demands.
   */
  boundary(ip: number): void {
    if (!this.started) {
      this.started = true;
      this.psb(ip);
    } else if (this.psbPending) {
      this.psb(ip);
    }
    const want = this.inFilter(ip);
    if (want === this.enabled) return;
    if (want) this.enable(ip);
    else this.asyncDisable(ip);
  }

  /** A non-branch instruction at `ip` executes (call {@link boundary} first when filters may change the state mid-block). */
  insn(ip: number): void {
    this.executed++;
    if (this.enabled) this.trace(ip);
  }

  /**
   * The branch (or last) instruction of a block at `ip` executes and
   * execution continues at `next`.
   */
  branch(ip: number, size: number, end: BlockEnd, next: number): void {
    this.executed++;
    if (!this.enabled) return;
    this.trace(ip);
    const kind = end.kind;
    if (kind === BranchKind.None) return;
    if (kind === BranchKind.ToKernel) {
      this.flushTnt();
      this.ipPacket(PacketType.TipPgd, 0, true);
      this.enabled = false;
      this.checkPsb();
      return;
    }
    if (this.filtered && !this.inFilter(next)) {
      // Leaving the filter ranges by a branch: TIP.PGD with the target.
      this.flushTnt();
      this.ipPacket(PacketType.TipPgd, next, false);
      this.enabled = false;
      this.retstack.reset();
      this.checkPsb();
      return;
    }
    switch (kind) {
      case BranchKind.CondJump:
        this.tnt(next !== ip + size);
        break;
      case BranchKind.DirectJump:
        break;
      case BranchKind.DirectCall:
        if (end.pushes) this.retstack.push(ip + size);
        break;
      case BranchKind.IndirectCall:
        this.retstack.push(ip + size);
        this.tip(next);
        break;
      case BranchKind.IndirectJump:
      case BranchKind.FarBranch:
        this.tip(next);
        break;
      case BranchKind.Return:
        if (this.settings.retCompression && !this.retstack.isEmpty() && this.peekReturn() === next) {
          this.retstack.pop();
          this.tnt(true);
        } else {
          this.retstack.reset();
          this.tip(next);
        }
        break;
    }
    this.checkPsb();
  }

  /**
   * An asynchronous event before `ip` executes (signal delivery, a fault at
   * `ip`, the recorder stopping): FUP(ip) and TIP.PGD, if tracing.
   */
  interrupt(ip: number): void {
    if (!this.enabled) return;
    this.asyncDisable(ip);
  }

  /** The first image epoch: `from` run-time images exist where this stream begins. */
  beginEpochs(from: number): void {
    this.epochs.length = 0;
    this.epochs.push({ offset: 0, from });
  }

  /** A new image epoch from the next instruction boundary (a PSB+ there). */
  requestEpoch(from: number): void {
    // The importer's bound (each epoch needs a rewrite: at most one per run-time image anyway).
    if (this.epochs.length >= MAX_IMAGE_EPOCHS) return;
    this.epochPending = from;
    this.psbPending = true;
  }

  /** End of the recording: flush what is pending. */
  finish(): void {
    this.flushTnt();
  }

  /** Traced IPs since the PSB at `offset` or later (snapshot mode). */
  hashFrom(offset: number): IpSequenceHash {
    const h = new IpSequenceHash();
    for (const seg of this.segments) {
      if (seg.offset < offset) continue;
      for (let i = 0; i < seg.count; i++) h.add(seg.ips[i]);
    }
    return h;
  }

  // --- packets ---------------------------------------------------------------

  private trace(ip: number): void {
    this.traced.add(ip);
    if (this.settings.snapshot) {
      const seg = this.segments[this.segments.length - 1];
      if (seg.count === seg.ips.length) {
        const bigger = new Float64Array(seg.ips.length * 2);
        bigger.set(seg.ips);
        seg.ips = bigger;
      }
      seg.ips[seg.count++] = ip;
    }
  }

  private peekReturn(): number {
    // ReturnStack has no peek: pop and push back.
    this.retstack.pop();
    const ip = this.retstack.ip;
    this.retstack.push(ip);
    return ip;
  }

  private enable(ip: number): void {
    this.timingBeforeEnable();
    this.ipPacket(PacketType.TipPge, ip, false);
    this.enabled = true;
    this.checkPsb();
  }

  private asyncDisable(ip: number): void {
    this.flushTnt();
    this.ipPacket(PacketType.Fup, ip, false);
    this.ipPacket(PacketType.TipPgd, 0, true);
    this.enabled = false;
    this.checkPsb();
  }

  private tip(ip: number): void {
    this.flushTnt();
    this.ipPacket(PacketType.Tip, ip, false);
  }

  private tnt(taken: boolean): void {
    this.tntBits = this.tntBits * 2 + (taken ? 1 : 0);
    this.tntSize++;
    if (this.tntSize === this.tntMax) this.flushTnt();
  }

  private flushTnt(): void {
    if (this.tntSize === 0) return;
    this.timing();
    const p = this.pkt;
    p.type = this.tntSize > 6 ? PacketType.Tnt64 : PacketType.Tnt8;
    p.tntBits = this.tntBits;
    p.tntSize = this.tntSize;
    this.out.packet(p);
    this.tntBits = 0;
    this.tntSize = 0;
  }

  /** An IP packet; compression chosen against the last IP as hardware does (SDM "IP Compression"). */
  private ipPacket(type: PacketType, ip: number, suppressed: boolean): void {
    this.timing();
    const p = this.pkt;
    p.type = type;
    if (suppressed) {
      p.ipc = IpCompression.Suppressed;
      p.hi = 0;
      p.lo = 0;
      this.out.packet(p);
      return;
    }
    this.lastIp.compress(p, ipHi(ip), ipLo(ip));
    this.out.packet(p);
  }

  private checkPsb(): void {
    if (this.out.offset - this.lastPsb >= this.settings.psbPeriod) this.psbPending = true;
  }

  /** PSB+ at the boundary before `ip`. */
  private psb(ip: number): void {
    this.flushTnt();
    this.psbPending = false;
    this.out.beginSegment();
    this.lastPsb = this.out.offset;
    if (this.epochPending >= 0) {
      // An epoch asked for before any instruction ran since the last one replaces it.
      const last = this.epochs[this.epochs.length - 1];
      if (last !== undefined && last.offset === this.lastPsb) last.from = this.epochPending;
      else this.epochs.push({ offset: this.lastPsb, from: this.epochPending });
      this.epochPending = -1;
    }
    if (this.settings.snapshot) this.segments.push({ offset: this.lastPsb, ips: new Float64Array(1024), count: 0 });
    const p = this.pkt;
    p.type = PacketType.Psb;
    this.out.packet(p);
    this.lastIp.reset();
    this.retstack.reset();
    const t = this.settings.timing;
    if (t.tsc) this.tscPacket();
    if (t.mtc) {
      const ctc = this.ctc();
      p.type = PacketType.Tma;
      p.ctc = ctc % 65536;
      p.fc = 0;
      this.out.packet(p);
      this.lastMtcPeriod = Math.floor(ctc / 2 ** t.mtcFreq);
    }
    p.type = PacketType.ModeExec;
    p.csl = true;
    p.csd = false;
    p.iflag = false;
    this.out.packet(p);
    if (this.enabled) this.ipPacket(PacketType.Fup, ip, false);
    p.type = PacketType.PsbEnd;
    this.out.packet(p);
    this.lastCycAt = this.executed;
  }

  // --- timing ----------------------------------------------------------------

  private tscValue(): number {
    return this.settings.timing.tscBase + this.executed;
  }

  /** The session's time stamp counter now (its base plus the instructions so far), for a stream that continues this one's clock. */
  get clock(): number {
    return this.tscValue();
  }

  private ctc(): number {
    return Math.floor(this.tscValue() / this.settings.timing.ctcRatio);
  }

  private tscPacket(): void {
    const tsc = this.tscValue();
    const p = this.pkt;
    p.type = PacketType.Tsc;
    p.hi = Math.floor(tsc / TWO_32) & 0xffffff;
    p.lo = tsc >>> 0;
    this.out.packet(p);
  }

  private timingBeforeEnable(): void {
    if (this.settings.timing.tsc) this.tscPacket();
  }

  /** MTC and CYC owed before the next timed packet. */
  private timing(): void {
    const t = this.settings.timing;
    if (t.mtc) {
      const period = Math.floor(this.ctc() / 2 ** t.mtcFreq);
      if (period !== this.lastMtcPeriod) {
        this.lastMtcPeriod = period;
        const p = this.pkt;
        const type = p.type;
        p.type = PacketType.Mtc;
        p.ctc = period & 0xff;
        this.out.packet(p);
        p.type = type;
      }
    }
    if (t.cyc) {
      const p = this.pkt;
      const type = p.type;
      p.type = PacketType.Cyc;
      p.cyc = this.executed - this.lastCycAt;
      this.out.packet(p);
      p.type = type;
      this.lastCycAt = this.executed;
    }
  }
}
