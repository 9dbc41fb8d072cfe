/**
 * Control-flow integrity from the static CFG of each module: a whitelist of
 * targets, checked on every indirect transfer of the trace.
 *
 * - indirect call and jump targets are judged by indirect-targets.ts (the
 *   judgement FlowGuard and the JOP/COP check share): pointer-callable
 *   function entries, the recovered set of each jump, the bindings of
 *   each PLT import. A jump whose set cannot be bounded statically is
 *   counted as unchecked, never reported;
 * - return: the target must be call-preceded (the instruction before it is
 *   a call);
 * - a return or jump that fails these checks is still legitimate if it is
 *   a stack switch the trace prepared (stack-switch.ts: a longjmp or
 *   setcontext to a recorded resume point, the first entry of a makecontext
 *   context and its planted return, an unwinder's jump to a landing pad, a
 *   signal handler's return into the sigreturn trampoline).
 *
 * A `--policy` file can replace a module's sets (`cfi.modules`, link-time
 * addresses) and allow single edges (`cfi.allow`); {@link cfiPolicyFor}
 * exports the derived sets so they can be saved, reviewed and edited.
 * Targets in modules without a CFG (raw images) are noted as unchecked.
 */
import type { PtEvent } from '../events/event.js';
import { GapKind, TransferKind, TRANSFER_NAMES } from '../flow/control-flow.js';
import { NOT_MAPPED } from './code-facts.js';
import { DetectorBase, cr3Text, type DetectorContext } from './detector-base.js';
import { RecentCalls } from './evidence.js';
import { ALLOWED, judgeIndirectTarget, UNCHECKED, UNCHECKED_REASON, UNKNOWN } from './indirect-targets.js';
import { hexAddress } from './finding.js';
import type { ModuleMap } from './modules.js';
import { loadPolicy, parseHexAddress, type CfiModulePolicy, type PolicyFile } from './policy.js';
import { StackSwitches, SwitchKind } from './stack-switch.js';
import { noImageForCall, noImageForJump, noImageForReturn, targetsNotChecked } from './unchecked-reasons.js';

/** The CFI sets of the modules, exportable as the `cfi` section of a policy file. */
export function cfiPolicyFor(modules: ModuleMap): NonNullable<PolicyFile['cfi']> {
  const out: Record<string, CfiModulePolicy> = {};
  for (const m of modules.modules) {
    const cfg = m.cfg();
    if (cfg === null) continue;
    const targets = new Set<number>();
    cfg.addressTaken.forEach((a) => targets.add(a));
    for (const e of cfg.exports) targets.add(e.address);
    for (const p of cfg.plt) targets.add(p.address);
    out[m.name] = {
      indirectTargets: [...targets].sort((a, b) => a - b).map(hexAddress),
      returnSites: [...cfg.returnSites].map(hexAddress),
    };
  }
  return { modules: out, allow: [] };
}

export class CfiDetector extends DetectorBase {
  readonly parameters: Readonly<Record<string, number | string>>;
  private readonly policyTargets = new Map<string, Set<number>>();
  private readonly policyReturns = new Map<string, Set<number>>();
  private readonly allowed = new Set<string>();
  private readonly calls = new RecentCalls(8);
  private readonly maxPerEdge: number;
  private readonly reportedEdges = new Map<string, number>();
  private readonly switches: StackSwitches;
  private checked = 0;
  private unboundedJumps = 0;

  constructor(ctx: DetectorContext) {
    super('cfi', ctx);
    this.maxPerEdge = this.numParam('maxPerEdge');
    this.parameters = { maxPerEdge: this.maxPerEdge, policy: ctx.policyFile ?? '' };
    this.switches = new StackSwitches(ctx.modules, ctx.facts, ctx.historyUnseen ?? false);
    if (ctx.policyFile) {
      const p = loadPolicy(ctx.policyFile);
      for (const [name, m] of Object.entries(p.cfi?.modules ?? {})) {
        if (m.indirectTargets) this.policyTargets.set(name, new Set(m.indirectTargets.map(parseHexAddress)));
        if (m.returnSites) this.policyReturns.set(name, new Set(m.returnSites.map(parseHexAddress)));
      }
      for (const e of p.cfi?.allow ?? []) this.allowed.add(`${parseHexAddress(e.from)}>${parseHexAddress(e.to)}`);
    }
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, _n: number, cr3: number): void {
    if (kind === TransferKind.DirectCall || kind === TransferKind.IndirectCall) this.calls.push(from, to);
    this.switches.observe(kind, from, to, size, null);
    if (Number.isNaN(to)) return;
    let why: string | null;
    switch (kind) {
      case TransferKind.IndirectCall:
        why = this.checkIndirect(from, to, false);
        break;
      case TransferKind.IndirectJump:
        why = this.checkIndirect(from, to, true);
        break;
      case TransferKind.Return:
        why = this.checkReturn(from, to);
        break;
      default:
        return;
    }
    this.checked++;
    if (why !== null && !this.allowed.has(`${from}>${to}`)) this.violation(kind, from, to, cr3, why);
  }

  /** null if allowed, else the reason. */
  private checkIndirect(from: number, to: number, isJump: boolean): string | null {
    const m = this.ctx.modules.find(to);
    if (m === null) {
      this.log.noteFor(isJump ? noImageForJump : noImageForCall, to, this.ctx.offset());
      return null;
    }
    const t = to - m.bias;
    const policy = this.policyTargets.get(m.name);
    if (policy !== undefined && policy.has(t)) return null;
    const verdict = judgeIndirectTarget(this.ctx.modules, from, to, isJump);
    if (verdict === UNKNOWN) {
      if (policy === undefined) this.log.noteFor(targetsNotChecked, m, this.ctx.offset());
      return policy === undefined ? null : `target is not in the policy's indirect targets of ${m.name}`;
    }
    if (verdict === ALLOWED) return null;
    if (isJump && this.switches.classify(TransferKind.IndirectJump, to, from) !== SwitchKind.None) return null;
    if (verdict === UNCHECKED) {
      this.unboundedJumps++;
      this.log.note(UNCHECKED_REASON, this.ctx.offset());
      return null;
    }
    return isJump
      ? `indirect jump target is not a jump-table target, address-taken function, landing pad or return site of ${m.name}`
      : `indirect call target is not an address-taken or exported function entry of ${m.name}`;
  }

  private checkReturn(from: number, to: number): string | null {
    const m = this.ctx.modules.find(to);
    const policy = m === null ? undefined : this.policyReturns.get(m.name);
    if (policy !== undefined && m !== null && policy.has(to - m.bias)) return null;
    const cp = this.ctx.facts.isCallPreceded(to);
    if (cp === NOT_MAPPED) {
      this.log.noteFor(noImageForReturn, to, this.ctx.offset());
      return null;
    }
    if (cp === 1) return null;
    if (this.switches.classify(TransferKind.Return, to) !== SwitchKind.None) return null;
    return 'return target is not call-preceded';
  }

  private violation(kind: TransferKind, from: number, to: number, cr3: number, why: string): void {
    const key = `${from}>${to}`;
    const n = (this.reportedEdges.get(key) ?? 0) + 1;
    this.reportedEdges.set(key, n);
    if (n > this.maxPerEdge) {
      this.log.note(`repeated CFI violations on already reported edges`, this.ctx.offset());
      return;
    }
    const ev = this.ctx.evidence;
    const kname = kind === TransferKind.Return ? 'cfi-return' : kind === TransferKind.IndirectCall ? 'cfi-icall' : 'cfi-ijmp';
    this.report({
      detector: this.name,
      kind: kname,
      severity: 'high',
      message: `${TRANSFER_NAMES[kind]} ${hexAddress(from)} -> ${hexAddress(to)}: ${why}`,
      offset: this.ctx.offset(),
      cr3: cr3Text(cr3),
      transfer: ev.transfer(kind, from, to),
      callPath: ev.calls(this.calls),
      chain: null,
      details: { rule: why },
    });
  }

  onEvent(ev: PtEvent): void {
    this.switches.observeEvent(ev);
  }

  onGap(kind: GapKind): void {
    if (kind !== GapKind.Disabled) this.switches.reset();
  }

  stats(): Record<string, number> {
    return { checked: this.checked, unboundedJumps: this.unboundedJumps, ...this.switches.stats() };
  }
}
