/**
 * The edge decoder's packet layer: reads a trace straight from its bytes
 * and hands the walker (fast-edges.ts) TNT bits and one *token* at a time —
 * what libipt's event and query decoders would deliver — for the packets
 * that fuzzing traces hold. Anything else makes it give up ({@link Tok.Bail})
 * and the edge decoder falls back to the exact decoders, so every rule here
 * follows src/events/event-decoder.ts exactly or is not taken at all.
 *
 * Handled (SDM Vol. 3C "Packet Generation Scenarios", and libipt's binding
 * rules as the event decoder implements them):
 * - PAD, TNT-8, TNT-64: bits, appended to {@link TntBits} until the next
 *   token. PAD, TSC, TMA, MTC and CYC make no event and do not stop a run of
 *   bits; timing packets still go through {@link Timing}, whose errors the
 *   event decoder reports.
 * - TIP (with a FUP before it: an asynchronous branch), TIP.PGE (with a
 *   MODE.Exec before it), TIP.PGD (with a FUP before it: an asynchronous
 *   disable), last-IP decompression.
 * - PSB+ with FUP, MODE.Exec, MODE.TSX (not aborted), PIP, VMCS, CBR and
 *   timing packets, the BDM70 erratum (a FUP in PSB+ followed by TIP.PGE).
 * - OVF followed by a FUP, or by nothing that resumes tracing, and the
 *   SKD010 case of an OVF followed by a PSB+ with a FUP.
 * - CBR and, while tracing is off, standalone PIP, VMCS and MODE.TSX: events
 *   without effect on the flow ({@link Tok.Nop}, {@link Tok.Paging}).
 *
 * One-byte packets and IP packets are decoded inline; the rest, and every
 * look-ahead, go through the shared {@link PacketDecoder}, so they decode
 * exactly as everywhere else.
 *
 * A trace in memory is read in place. A trace of any size can be read from
 * a {@link PacketStream}, in flat memory: the inline loop reads the
 * stream's window and slides it when a packet crosses its end; the packet
 * decoder calls (and their look-aheads) slide it themselves. Positions are
 * trace offsets either way.
 */
import { AddrCfg, type DecoderConfig } from '../../packets/config.js';
import { PacketDecoder } from '../../packets/decoder.js';
import { PacketStream } from '../../packets/packet-stream.js';
import { ErrorCode } from '../../packets/errors.js';
import { IP_PAYLOAD_SIZE, PACKET_NAMES, PacketType } from '../../packets/packet-type.js';
import { Packet } from '../../packets/packet.js';
import { execModeOf } from '../../packets/exec-mode.js';
import { findHeaderFup, tipPgeFollows } from '../../events/bind/psb-lookahead.js';
import { Timing } from '../../events/time.js';
import { ExecMode } from '../instruction.js';
import { TntBits } from './tnt-bits.js';

/** What the scanner delivers after the bits before it. */
export const enum Tok {
  /** End of the trace. */
  Eos = 0,
  /** An indirect-branch target. `ip`, `ipSuppressed`. */
  Tip,
  /** Tracing enabled (TIP.PGE). `ip`, `ipSuppressed`, `mode` (Unknown if no MODE.Exec came with it). */
  Enabled,
  /** Tracing disabled at a branch (TIP.PGD). `ip` unless `ipSuppressed`. */
  Disabled,
  /** Asynchronous branch (FUP + TIP). `at` → `ip`. */
  AsyncBranch,
  /** Asynchronous disable (FUP + TIP.PGD). `at`. */
  AsyncDisabled,
  /** PSB+. `psbEnabled`, `ip` (its FUP), `psbBindsAtIp`, `mode`. */
  Psb,
  /** Overflow. `ip` unless `ipSuppressed` (tracing off after it). */
  Overflow,
  /** An event with no effect on the flow (CBR; MODE.TSX while tracing is off). */
  Nop,
  /** A PIP or VMCS outside PSB+: no effect while tracing is off, binds to an instruction while on. */
  Paging,
  /** Something the edge decoder does not handle: use the exact decoders. */
  Bail,
}

/** Result of the SKD010 look-ahead. */
const enum Skd010 {
  NotHandled,
  AtPsb,
  Bail,
}

export class TraceScanner {
  readonly bits = new TntBits();
  /** The current token and its fields. */
  tok: Tok = Tok.Eos;
  ip = 0;
  at = 0;
  ipSuppressed = false;
  mode: ExecMode = ExecMode.Unknown;
  psbEnabled = false;
  psbBindsAtIp = false;
  /**
   * Bits of the last TNT packet appended, while no event came after it:
   * with the current token a TIP, the query decoder hands that TIP to an
   * indirect branch only if every remaining bit is from that packet.
   */
  lastPktBits = 0;
  /** Why the scanner bailed (for statistics). */
  bailReason = '';

  /** The bytes the inline loop reads: the trace, or the stream's window (trace offset {@link base}). */
  private buf: Uint8Array = new Uint8Array(0);
  private base = 0;
  /** Trace offset of the end of {@link buf}. */
  private end = 0;
  /** Trace offsets. */
  private pos = 0;
  private psbPos = 0;
  /** What packets are decoded with: {@link memory} over a trace in memory, or the caller's stream. */
  private pd: PacketDecoder | PacketStream;
  private stream: PacketStream | null = null;
  private readonly memory: PacketDecoder;
  private readonly pkt = new Packet();
  /** For look-aheads that must not overwrite {@link pkt}. */
  private readonly ahead = new Packet();
  private readonly timing: Timing;
  private readonly scanTiming: Timing;

  // Last-IP state (libipt's pt_last_ip; see packets/last-ip.ts).
  private ipHi = 0;
  private ipLo = 0;
  private haveIp = false;
  private ipSupp = false;

  // Event-decoder state.
  private enabled = false;
  private lastMode: ExecMode = ExecMode.Unknown;
  private modeValid = false;
  /** A MODE.Exec waiting for its TIP.PGE. */
  private pendingMode: ExecMode | -1 = -1;
  /** A FUP waiting for its TIP or TIP.PGD (an asynchronous branch from `pendingAt`). */
  private pendingAsync = false;
  private pendingAt = 0;
  /** An OVF waiting for its FUP. */
  private pendingOverflow = false;

  private readonly haveFilter: boolean;

  constructor(readonly config: DecoderConfig) {
    this.memory = new PacketDecoder(new Uint8Array(0), scannerPacketOptions(config));
    this.pd = this.memory;
    this.timing = new Timing(config);
    this.scanTiming = new Timing(config);
    const r = config.addrFilter.ranges;
    this.haveFilter = r.some((x) => x.cfg !== AddrCfg.Disabled);
  }

  /**
   * Start on `trace` at its first PSB. False if there is none (nothing is
   * decoded then, as the exact decoders find no sync point either). A
   * stream must have been made with {@link scannerPacketOptions}; it is
   * read from its start.
   */
  begin(trace: Uint8Array | PacketStream): boolean {
    if (trace instanceof PacketStream) {
      this.stream = trace;
      this.pd = trace;
    } else {
      this.stream = null;
      this.memory.rebase(trace, 0);
      this.pd = this.memory;
    }
    this.pd.restore(-1, -1);
    this.bits.clear();
    this.timing.reset();
    this.resetEventState();
    this.lastPktBits = 0;
    this.bailReason = '';
    if (this.pd.syncForward() < 0) return false;
    this.pos = this.pd.offset;
    this.psbPos = this.pos;
    this.view();
    return true;
  }

  /**
   * Point {@link buf} at the bytes the packet decoder reads now. A stream's
   * window moves: a look-ahead may have left it elsewhere than at
   * {@link pos}, which then brings it back.
   */
  private view(): void {
    const pd = this.pd;
    if (pd === this.memory) {
      this.buf = pd.buffer;
      this.base = 0;
    } else {
      const stream = pd as PacketStream;
      const at = stream.bytesOffset;
      if (this.pos < at || this.pos > at + stream.bytes.length) stream.restore(this.pos, this.psbPos);
      this.buf = stream.bytes;
      this.base = stream.bytesOffset;
    }
    this.end = this.base + this.buf.length;
  }

  /**
   * Make the bytes from trace offset `pos` on readable in {@link buf}, past
   * the current window end; at the end of the trace, the Eos token and false.
   */
  private slideOrEnd(pos: number): boolean {
    if (this.stream !== null && this.stream.slideTo(pos)) {
      this.view();
      return true;
    }
    this.tok = Tok.Eos;
    return false;
  }

  /** Event-decoder state as after a sync or an overflow (time is kept by the caller). */
  private resetEventState(): void {
    this.ipHi = 0;
    this.ipLo = 0;
    this.haveIp = false;
    this.ipSupp = false;
    this.enabled = false;
    this.lastMode = ExecMode.Unknown;
    this.modeValid = false;
    this.pendingMode = -1;
    this.pendingAsync = false;
    this.pendingOverflow = false;
  }

  private bail(why: string): void {
    this.tok = Tok.Bail;
    this.bailReason = why;
  }

  /** The last IP as an address, or NaN if it is not available. */
  private lastIp(): number {
    if (!this.haveIp || this.ipSupp) return NaN;
    return (this.ipHi | 0) * 4294967296 + (this.ipLo >>> 0);
  }

  /** Apply an IP payload (packets/last-ip.ts). False for a reserved compression. */
  private updateIp(ipc: number, hi: number, lo: number): boolean {
    switch (ipc) {
      case 0:
        this.ipSupp = true;
        return true;
      case 1:
        this.ipLo = ((this.ipLo & 0xffff0000) | (lo & 0xffff)) >>> 0;
        break;
      case 2:
        this.ipLo = lo >>> 0;
        break;
      case 3:
        this.ipLo = lo >>> 0;
        this.ipHi = hi & 0x8000 ? (hi | 0xffff0000) >>> 0 : hi & 0xffff;
        break;
      case 4:
        this.ipLo = lo >>> 0;
        this.ipHi = ((this.ipHi & 0xffff0000) | (hi & 0xffff)) >>> 0;
        break;
      case 6:
        this.ipLo = lo >>> 0;
        this.ipHi = hi >>> 0;
        break;
      default:
        return false;
    }
    this.haveIp = true;
    this.ipSupp = false;
    return true;
  }

  private setIpToken(tok: Tok): void {
    this.tok = tok;
    const ip = this.lastIp();
    this.ipSuppressed = ip !== ip;
    this.ip = this.ipSuppressed ? 0 : ip;
  }

  /**
   * Move past the current token: append the TNT bits that follow and stop
   * at the next token.
   */
  next(): void {
    // A look-ahead since the last call may have moved a stream's window.
    if (this.stream !== null) this.view();
    let buf = this.buf;
    let base = this.base;
    let end = this.end;
    for (;;) {
      const pos = this.pos;
      if (pos >= end) {
        if (!this.slideOrEnd(pos)) return;
        ({ buf, base, end } = this);
        continue;
      }
      const opc = buf[pos - base];
      if ((opc & 1) === 0) {
        if (opc === 0) {
          this.pos = pos + 1;
          continue;
        }
        if (opc !== 0x02) {
          // TNT-8: bits 7:1 hold the outcomes and a stop bit. A run of them
          // (and PADs) is gathered in 32-bit chunks.
          if (!this.enabled || this.pendingAsync || this.pendingMode >= 0) return this.bail('tnt while tracing is off or an event waits');
          let acc = 0;
          let accBits = 0;
          let n = 0;
          let p = pos;
          for (; p < end; p++) {
            const b = buf[p - base];
            if ((b & 1) !== 0 || b === 0x02) break;
            if (b === 0) continue;
            const payload = b >>> 1;
            n = 31 - Math.clz32(payload);
            if (accBits + n > 32) {
              this.bits.append(acc, accBits);
              acc = 0;
              accBits = 0;
            }
            acc = ((acc << n) | (payload & ~(1 << n))) >>> 0;
            accBits += n;
          }
          this.bits.append(acc, accBits);
          this.lastPktBits = n;
          this.pos = p;
          continue;
        }
      } else if ((opc & 3) !== 3) {
        const low = opc & 0x1f;
        if (low === 0x0d || low === 0x11 || low === 0x01 || low === 0x1d) {
          const ipc = opc >>> 5;
          const n = IP_PAYLOAD_SIZE[ipc];
          if (n < 0) return this.bail('bad ip compression');
          if (pos + 1 + n > end) {
            if (!this.slideOrEnd(pos)) return;
            ({ buf, base, end } = this);
            continue;
          }
          let lo = 0;
          let hi = 0;
          const p = pos + 1 - base;
          if (n >= 2) lo = buf[p] | (buf[p + 1] << 8);
          if (n >= 4) lo = (lo | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
          if (n >= 6) hi = buf[p + 4] | (buf[p + 5] << 8);
          if (n === 8) hi = (hi | (buf[p + 6] << 16) | (buf[p + 7] << 24)) >>> 0;
          this.pos = pos + 1 + n;
          if (!this.updateIp(ipc, hi, lo)) return this.bail('bad ip compression');
          if (low === 0x0d) {
            if (this.onTip()) return;
          } else if (low === 0x11) {
            if (this.onTipPge()) return;
          } else if (low === 0x01) {
            if (this.onTipPgd()) return;
          } else if (this.onFup()) {
            return;
          }
          continue;
        }
      }
      const done = this.slowPacket();
      // The packet decoder may have moved a stream's window.
      this.view();
      if (done) return;
      ({ buf, base, end } = this);
    }
  }

  // --- IP packets (event-decoder.ts decodeTip, decodeTipPge, decodeTipPgd, decodeFup) ---

  /** True if a token was produced. */
  private onTip(): boolean {
    if (!this.enabled || this.pendingMode >= 0) {
      this.bail('tip while tracing is off or with a mode change');
      return true;
    }
    if (this.pendingAsync) {
      this.pendingAsync = false;
      this.at = this.pendingAt;
      this.setIpToken(Tok.AsyncBranch);
      this.lastPktBits = 0;
      return true;
    }
    this.setIpToken(Tok.Tip);
    return true;
  }

  private onTipPge(): boolean {
    if (this.pendingAsync) {
      this.bail('tip.pge after a fup');
      return true;
    }
    this.setIpToken(Tok.Enabled);
    this.mode = this.pendingMode >= 0 ? (this.pendingMode as ExecMode) : ExecMode.Unknown;
    this.pendingMode = -1;
    this.enabled = true;
    this.lastPktBits = 0;
    return true;
  }

  private onTipPgd(): boolean {
    if (this.pendingMode >= 0) {
      this.bail('tip.pgd with a mode change');
      return true;
    }
    if (this.pendingAsync) {
      this.pendingAsync = false;
      this.at = this.pendingAt;
      this.setIpToken(Tok.AsyncDisabled);
    } else {
      this.setIpToken(Tok.Disabled);
    }
    this.enabled = false;
    this.lastPktBits = 0;
    return true;
  }

  private onFup(): boolean {
    if (this.pendingMode >= 0) {
      this.bail('fup after a mode change');
      return true;
    }
    if (this.pendingOverflow) {
      this.pendingOverflow = false;
      this.setIpToken(Tok.Overflow);
      this.enabled = true;
      this.lastPktBits = 0;
      return true;
    }
    const ip = this.lastIp();
    if (!this.enabled || this.pendingAsync || ip !== ip) {
      this.bail('fup while tracing is off, twice, or without an ip');
      return true;
    }
    this.pendingAsync = true;
    this.pendingAt = ip;
    return false;
  }

  // --- other packets -----------------------------------------------------------

  /** Decode the packet at `pos` with the packet decoder; true if a token was produced. */
  private slowPacket(): boolean {
    const p = this.pkt;
    const pd = this.pd;
    pd.restore(this.pos, this.psbPos);
    const size = pd.next(p);
    if (size < 0) {
      if (size === -ErrorCode.Eos) this.tok = Tok.Eos;
      else this.bail('packet decode error');
      return true;
    }
    const at = this.pos;
    this.pos = pd.offset;
    switch (p.type) {
      case PacketType.Pad:
        return false;
      case PacketType.Tnt8:
      case PacketType.Tnt64:
        if (!this.enabled || this.pendingAsync || this.pendingMode >= 0) {
          this.bail('tnt while tracing is off or an event waits');
          return true;
        }
        this.bits.appendPayload(p.tntBits, p.tntSize);
        this.lastPktBits = p.tntSize;
        return false;
      case PacketType.Tsc:
      case PacketType.Tma:
      case PacketType.Mtc:
      case PacketType.Cyc:
        if (this.timing.onTimingPacket(p, false) < 0) {
          this.bail('timing error');
          return true;
        }
        return false;
      case PacketType.Cbr:
        if (this.timing.onCbr(p, false) < 0) {
          this.bail('timing error');
          return true;
        }
        this.nop(Tok.Nop);
        return true;
      case PacketType.ModeExec: {
        if (this.pendingMode >= 0 || this.pendingAsync) {
          this.bail('mode.exec with an event waiting');
          return true;
        }
        const mode = execModeOf(p.csl, p.csd);
        this.noteMode(mode);
        this.pendingMode = mode;
        return false;
      }
      case PacketType.ModeTsx:
        if (this.enabled) {
          this.bail('mode.tsx while tracing');
          return true;
        }
        this.nop(Tok.Nop);
        return true;
      case PacketType.Pip:
      case PacketType.Vmcs:
        if (this.pendingAsync) {
          this.bail('paging with an asynchronous branch');
          return true;
        }
        this.nop(Tok.Paging);
        return true;
      case PacketType.Psb:
        this.psbPos = at;
        this.decodePsb();
        return true;
      case PacketType.Ovf:
        this.decodeOvf();
        return true;
      default:
        this.bail(`${PACKET_NAMES[p.type]} packet`);
        return true;
    }
  }

  private nop(tok: Tok): void {
    this.tok = tok;
    this.lastPktBits = 0;
  }

  private noteMode(mode: ExecMode): void {
    this.lastMode = mode;
    this.modeValid = true;
  }

  /** PSB+ up to PSBEND (event-decoder.ts decodePsb). Produces a Psb token. */
  private decodePsb(): void {
    if (this.pendingMode >= 0 || this.pendingAsync || this.pendingOverflow) return this.bail('psb with an event waiting');
    this.ipHi = 0;
    this.ipLo = 0;
    this.haveIp = false;
    this.ipSupp = false;
    this.enabled = false;
    let binds = false;
    let mode: ExecMode = ExecMode.Unknown;
    const p = this.pkt;
    const pd = this.pd;
    for (;;) {
      const size = pd.next(p);
      if (size < 0) {
        if (size === -ErrorCode.Eos) this.tok = Tok.Eos;
        else this.bail('packet decode error in psb+');
        return;
      }
      switch (p.type) {
        case PacketType.Fup: {
          let on = p.ipc !== 0;
          if (on && this.config.errata.bdm70) {
            const r = tipPgeFollows(this.pd, this.ahead);
            if (r < 0) return this.bail('bdm70 look-ahead error');
            if (r > 0) on = false;
          }
          this.enabled = on;
          if (on && !this.updateIp(p.ipc, p.hi, p.lo)) return this.bail('bad ip compression');
          break;
        }
        case PacketType.ModeExec: {
          const m = execModeOf(p.csl, p.csd);
          if (this.modeValid && m !== this.lastMode) return this.bail('psb+ mode differs');
          this.noteMode(m);
          mode = m;
          binds = true;
          break;
        }
        case PacketType.ModeTsx:
          if (p.abrt) return this.bail('aborted transaction in psb+');
          binds = true;
          break;
        case PacketType.Pip:
        case PacketType.Vmcs:
          binds = true;
          break;
        case PacketType.Cbr:
          if (this.timing.onCbr(p, true) < 0) return this.bail('timing error');
          break;
        case PacketType.Tsc:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc:
          if (this.timing.onTimingPacket(p, true) < 0) return this.bail('timing error');
          break;
        case PacketType.Pad:
          break;
        case PacketType.PsbEnd:
          this.pos = pd.offset;
          this.tok = Tok.Psb;
          this.psbEnabled = this.enabled;
          // Events with the FUP's IP wait for the flow to reach it.
          this.psbBindsAtIp = this.enabled && binds;
          this.ip = this.enabled ? this.lastIp() : 0;
          this.mode = mode;
          this.lastPktBits = 0;
          return;
        default:
          return this.bail(`${PACKET_NAMES[p.type]} in psb+`);
      }
    }
  }

  /** OVF outside PSB+ (event-decoder.ts decodeOvf). */
  private decodeOvf(): void {
    if (this.pendingMode >= 0 || this.pendingAsync || this.pendingOverflow) return this.bail('ovf with an event waiting');
    this.resetEventState();
    if (this.timing.onOvf() < 0) return this.bail('timing error');
    const found = this.findOvfFup();
    if (found > 0) {
      if (this.config.errata.apl12) return this.bail('apl12');
      // The overflow binds to that FUP; what comes before it is read as usual.
      this.pendingOverflow = true;
      this.next();
      return;
    }
    if (this.config.errata.skd010) {
      const r = this.skd010();
      if (r === Skd010.Bail) return this.bail('skd010');
      if (r === Skd010.AtPsb) return;
    }
    if (this.config.errata.apl11 && found === -ErrorCode.BadContext) return this.bail('apl11');
    if (found < 0 && found !== -ErrorCode.Eos) return this.bail('ovf look-ahead error');
    this.tok = Tok.Overflow;
    this.ipSuppressed = true;
    this.ip = 0;
    this.lastPktBits = 0;
  }

  /** The FUP an OVF binds to: > 0 if there is one, 0 if tracing stays off, or an error. */
  private findOvfFup(): number {
    const pd = this.pd;
    const p = this.pkt;
    pd.restore(this.pos, this.psbPos);
    for (;;) {
      const size = pd.next(p);
      if (size < 0) return size;
      switch (p.type) {
        case PacketType.Fup:
          return 1;
        case PacketType.Pad:
        case PacketType.Mnt:
        case PacketType.Cbr:
        case PacketType.Tsc:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc:
        case PacketType.Trig:
        case PacketType.Evd:
        case PacketType.Bbp:
        case PacketType.Bip:
        case PacketType.Bep:
          break;
        case PacketType.PsbEnd:
        case PacketType.Tip:
        case PacketType.TipPgd:
        case PacketType.Tnt8:
        case PacketType.Tnt64:
          return -ErrorCode.BadContext;
        default:
          return 0;
      }
    }
  }

  /**
   * SKD010 (the FUP after an OVF may be missing), the cases handled here:
   * a PSB+ with a FUP ahead resumes there (an Overflow token with its IP,
   * the scanner left at the PSB); the cases the event decoder does not
   * handle either leave the overflow without an IP; the rest bail.
   */
  private skd010(): Skd010 {
    const pd = this.pd;
    const p = this.pkt;
    const t = this.scanTiming;
    t.copyFrom(this.timing);
    pd.restore(this.pos, this.psbPos);
    for (;;) {
      const at = pd.offset;
      const size = pd.next(p);
      if (size < 0) return size === -ErrorCode.Eos ? Skd010.NotHandled : Skd010.Bail;
      switch (p.type) {
        case PacketType.TipPge:
        case PacketType.Tnt8:
        case PacketType.Tnt64:
        case PacketType.Ovf:
        case PacketType.Stop:
        case PacketType.Mwait:
          return Skd010.NotHandled;
        case PacketType.Exstop:
        case PacketType.Ptw:
          if (p.ip) return Skd010.NotHandled;
          return Skd010.Bail;
        case PacketType.Pad:
          break;
        case PacketType.Tsc:
        case PacketType.Cbr:
        case PacketType.Tma:
        case PacketType.Mtc:
        case PacketType.Cyc:
          if (t.onTimingPacket(p, false) < 0) return Skd010.Bail;
          break;
        case PacketType.Psb: {
          const fup = findHeaderFup(this.pd, this.pkt);
          if (fup === 0) return Skd010.NotHandled;
          if (fup < 0) return fup === -ErrorCode.Eos ? Skd010.NotHandled : Skd010.Bail;
          const q = this.pkt;
          if (q.ipc === 0 || !this.updateIp(q.ipc, q.hi, q.lo)) return Skd010.Bail;
          // Resume at the PSB: the overflow takes the FUP's IP, then PSB+ is read as usual.
          this.timing.copyFrom(t);
          this.enabled = true;
          this.setIpToken(Tok.Overflow);
          this.lastPktBits = 0;
          this.pos = at;
          return Skd010.AtPsb;
        }
        default:
          // PGD, FUP, TIP, MODE.*, PIP, VMCS, PSBEND, MNT, power events...:
          // rare enough to leave to the exact decoders.
          return Skd010.Bail;
      }
    }
  }
}

/** The packet decoder options the scanner (and so the edge decoder's streams) reads with. */
export function scannerPacketOptions(config: DecoderConfig): { pebs: boolean; skd007: boolean } {
  return { pebs: false, skd007: config.errata.skd007 };
}
