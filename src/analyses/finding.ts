/**
 * The findings model: what a detector reports, with the evidence a reader
 * needs to judge it without re-running the decoder.
 *
 * A finding names the offending transfer (source → target, its kind, the
 * disassembly at the source and of the first instructions at the target,
 * symbol+offset where a symbol table is known), the recent call path, and,
 * for code-reuse chains, every gadget with its instructions. Addresses are
 * "0x..." strings so that JSON output keeps all 64 bits.
 *
 * Alongside findings, detectors keep {@link UncheckedNote}s: what they could
 * not check (no image at an address, a trace gap that broke call/return
 * pairing, a module without symbols). A trace that could not be fully
 * checked says so instead of passing silently.
 */

export type Severity = 'low' | 'medium' | 'high';

/** One instruction, disassembled (text '' when the bytes are not in the image). */
export interface InsnEvidence {
  address: string;
  /** `symbol+0xoff` or null. */
  symbol: string | null;
  text: string;
}

/** The transfer a finding is about. */
export interface TransferEvidence {
  /** Transfer kind name (TRANSFER_NAMES: 'ret', 'icall', 'ijmp', ...). */
  kind: string;
  from: string;
  to: string;
  fromSymbol: string | null;
  toSymbol: string | null;
  /** The branch instruction at `from`. */
  source: InsnEvidence | null;
  /** The first instructions executed at `to`. */
  target: InsnEvidence[];
}

/** One call of the recent call path (oldest first). */
export interface CallEvidence {
  site: string;
  target: string;
  siteSymbol: string | null;
  targetSymbol: string | null;
}

/** One gadget of a code-reuse chain. */
export interface GadgetEvidence {
  address: string;
  symbol: string | null;
  /** How control arrived here ('ret', 'ijmp', 'icall'). */
  enteredBy: string;
  /** Instructions executed in the gadget, its final branch included. */
  length: number;
  insns: InsnEvidence[];
}

export interface Finding {
  detector: string;
  /** Short machine-readable kind: 'return-mismatch', 'rop-chain', 'srop', 'cfi-icall', ... */
  kind: string;
  severity: Severity;
  message: string;
  /** Trace offset near the offending transfer (the decoder's position when it was seen). */
  offset: number;
  /** Address space (CR3) as hex, or null when the trace has none. */
  cr3: string | null;
  /**
   * The process and thread whose trace this is (the stream's; null when the
   * stream is not one thread's, e.g. a raw trace or a per-CPU stream).
   */
  pid: number | null;
  tid: number | null;
  transfer: TransferEvidence | null;
  callPath: CallEvidence[];
  chain: GadgetEvidence[] | null;
  /** Detector-specific facts (expected return address, chain length, policy rule, ...). */
  details: Record<string, string | number | boolean>;
}

/**
 * A finding as a detector makes it: the thread is not the detector's to
 * know (each stream runs its own detectors); DetectorBase.report adds it.
 */
export type DetectedFinding = Omit<Finding, 'pid' | 'tid'>;

/** The process and thread a stream traces (null: unknown or not one thread). */
export interface ThreadRef {
  pid: number | null;
  tid: number | null;
}

/** `[pid/tid]` as perf script prints it, or null when the thread is unknown. */
export function threadTitle(t: ThreadRef): string | null {
  return t.pid !== null && t.tid !== null ? `[${t.pid}/${t.tid}]` : null;
}

/** Something a detector could not check, aggregated by reason. */
export interface UncheckedNote {
  detector: string;
  /** One line, e.g. `no image for 0x7f0012345000`. */
  reason: string;
  count: number;
  /** Trace offset of the first occurrence. */
  firstOffset: number;
}

/** Keys {@link UncheckedLog.noteFor} remembers per reason (addresses can be as many as the trace's transfers). */
const MAX_KEYS_PER_REASON = 4096;

/** Collects unchecked notes by reason; allocation happens only on the first occurrence of a reason. */
export class UncheckedLog {
  private readonly byReason = new Map<string, UncheckedNote>();
  /** {@link noteFor}'s notes by reason function and key. */
  private readonly byKey = new Map<(key: never) => string, Map<unknown, UncheckedNote>>();

  constructor(
    readonly detector: string,
    /** Distinct reasons kept; later new reasons are folded into one "more" note. */
    readonly maxReasons = 64,
  ) {}

  note(reason: string, offset: number, count = 1): void {
    this.noteOf(reason, offset).count += count;
  }

  /**
   * `note(reason(key), offset)`, building the reason only the first time
   * `key` comes with this `reason` (a function made once, not per call): a
   * note made per transfer (every indirect branch into a module without a
   * CFG, say) should not build and hash a string each time. Keys kept per
   * reason are bounded; past that, each call builds its reason. (Counts go
   * to the note itself, not through {@link note}.)
   */
  noteFor<K>(reason: (key: K) => string, key: K, offset: number): void {
    let byKey = this.byKey.get(reason) as Map<K, UncheckedNote> | undefined;
    if (byKey === undefined) {
      byKey = new Map();
      this.byKey.set(reason, byKey);
    }
    const known = byKey.get(key);
    if (known !== undefined) {
      known.count++;
      return;
    }
    const n = this.noteOf(reason(key), offset);
    n.count++;
    if (byKey.size < MAX_KEYS_PER_REASON) byKey.set(key, n);
  }

  /** The note that counts `reason` (the reason list's overflow note once it is full), made if new. */
  private noteOf(reason: string, offset: number): UncheckedNote {
    let n = this.byReason.get(reason);
    if (n === undefined) {
      if (this.byReason.size >= this.maxReasons) {
        reason = 'further unchecked items (reason list full)';
        n = this.byReason.get(reason);
      }
      if (n === undefined) {
        n = { detector: this.detector, reason, count: 0, firstOffset: offset };
        this.byReason.set(reason, n);
      }
    }
    return n;
  }

  has(reason: string): boolean {
    return this.byReason.has(reason);
  }

  notes(): UncheckedNote[] {
    return [...this.byReason.values()];
  }
}

/**
 * A number as `0x` and its hex digits, as JavaScript prints it (a negative
 * offset keeps its minus sign): the crash walk's steps and the dormant
 * report's notes. (The layers below have their own, in packets/address.ts:
 * analyses do not import packets.)
 */
export function hex(v: number): string {
  return '0x' + v.toString(16);
}

/** An address as `0x...` (two's complement 64-bit for negative kernel addresses). */
export function hexAddress(ip: number): string {
  if (Number.isNaN(ip)) return 'unknown';
  return '0x' + BigInt.asUintN(64, BigInt(ip)).toString(16);
}

/** Severity order for sorting and thresholds. */
export function severityRank(s: Severity): number {
  return s === 'high' ? 3 : s === 'medium' ? 2 : 1;
}
