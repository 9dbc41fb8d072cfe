/**
 * Turns the plain numbers detectors keep (addresses, kinds, counts) into
 * {@link Finding} evidence. Called only when a finding is made, so the
 * allocation and disassembly happen off the hot path.
 */
import { TRANSFER_NAMES, type TransferKind } from '../flow/control-flow.js';
import type { CodeFacts } from './code-facts.js';
import type { CallEvidence, GadgetEvidence, InsnEvidence, TransferEvidence } from './finding.js';
import { hexAddress } from './finding.js';
import type { ModuleMap } from './modules.js';

/** Instructions shown at a transfer's target. */
export const TARGET_INSNS = 4;
/** Instructions shown per gadget at most. */
export const GADGET_INSNS = 12;

export class EvidenceBuilder {
  constructor(
    readonly facts: CodeFacts,
    readonly modules: ModuleMap,
  ) {}

  symbol(ip: number): string | null {
    return Number.isNaN(ip) ? null : this.modules.symbolize(ip);
  }

  insn(ip: number): InsnEvidence | null {
    if (Number.isNaN(ip)) return null;
    return { address: hexAddress(ip), symbol: this.symbol(ip), text: this.facts.disassembleAt(ip) };
  }

  transfer(kind: TransferKind, from: number, to: number): TransferEvidence {
    const target: InsnEvidence[] = Number.isNaN(to)
      ? []
      : this.facts.straightLine(to, TARGET_INSNS).map((i) => ({ address: hexAddress(i.ip), symbol: this.symbol(i.ip), text: i.text }));
    return {
      kind: TRANSFER_NAMES[kind] ?? String(kind),
      from: hexAddress(from),
      to: hexAddress(to),
      fromSymbol: this.symbol(from),
      toSymbol: this.symbol(to),
      source: this.insn(from),
      target,
    };
  }

  /**
   * A gadget entered at `start` by `enteredBy` and left by the branch at
   * `last` after `length` instructions: its instructions, decoded from the
   * image in program order (following direct jumps is not needed for the
   * short gadgets chains are made of; a gadget that left straight-line code
   * shows up to its first branch).
   */
  gadget(start: number, last: number, length: number, enteredBy: TransferKind): GadgetEvidence {
    const insns: InsnEvidence[] = [];
    let at = start;
    for (let i = 0; i < GADGET_INSNS; i++) {
      const line = this.facts.straightLine(at, 1)[0];
      if (line === undefined) break;
      insns.push({ address: hexAddress(at), symbol: i === 0 ? this.symbol(at) : null, text: line.text });
      if (at === last || line.iclass !== 1 /* Other */) break;
      at += line.size;
    }
    return {
      address: hexAddress(start),
      symbol: this.symbol(start),
      enteredBy: TRANSFER_NAMES[enteredBy] ?? String(enteredBy),
      length,
      insns,
    };
  }

  calls(recent: RecentCalls): CallEvidence[] {
    const out: CallEvidence[] = [];
    recent.forEach((site, target) => {
      out.push({ site: hexAddress(site), target: hexAddress(target), siteSymbol: this.symbol(site), targetSymbol: this.symbol(target) });
    });
    return out;
  }
}

/** The last N calls (site, target), in a ring of typed arrays. */
export class RecentCalls {
  private readonly sites: Float64Array;
  private readonly targets: Float64Array;
  private next = 0;
  private count = 0;

  constructor(readonly capacity = 16) {
    this.sites = new Float64Array(capacity);
    this.targets = new Float64Array(capacity);
  }

  push(site: number, target: number): void {
    this.sites[this.next] = site;
    this.targets[this.next] = target;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  clear(): void {
    this.count = 0;
    this.next = 0;
  }

  /** Oldest first. */
  forEach(fn: (site: number, target: number) => void): void {
    for (let i = 0; i < this.count; i++) {
      const at = (this.next - this.count + i + this.capacity) % this.capacity;
      fn(this.sites[at], this.targets[at]);
    }
  }
}
