/**
 * Inter-module control-flow policy (a COP/ret2libc mitigation): control may
 * enter another module only where that module offers entry.
 *
 * Default policy, per transfer that crosses from module A to module B:
 * - calls and jumps must land on an exported function of B, a PLT stub of
 *   B, B's ELF entry point or one of its init/fini functions, or an address-taken function of B (callbacks
 *   such as qsort comparators, atexit and .init_array functions: the caller
 *   was handed the pointer, which the static CFG records as address-taken);
 * - indirect jumps may also land on a call-preceded site (longjmp back to
 *   setjmp) or a landing pad (the unwinder's jump into a catch block);
 * - returns must land on a call-preceded site of B (back after a call), or
 *   an address-taken code address (makecontext's planted continuation).
 * A `--policy` file's `interModule.rules` replace the default for the
 * module pairs they name (targets: symbol names, "0x..." link-time
 * addresses, "*exports", "*plt", "*address-taken"); with `"mode": "strict"`
 * pairs without a rule may not transfer at all.
 */
import { TransferKind, TRANSFER_NAMES } from '../flow/control-flow.js';
import { NOT_MAPPED } from './code-facts.js';
import { DetectorBase, cr3Text, type DetectorContext } from './detector-base.js';
import { RecentCalls } from './evidence.js';
import { hexAddress } from './finding.js';
import type { Module } from './modules.js';
import { initFini } from './indirect-targets.js';
import { loadPolicy, parseHexAddress, type InterModuleRule } from './policy.js';

const STACK_SWITCHERS = /swapcontext|setcontext|start_context|_Unwind_|uw_install_context|longjmp|indirect_thunk|return_thunk/;

export class InterModuleDetector extends DetectorBase {
  readonly parameters: Readonly<Record<string, string>>;
  private readonly rules = new Map<string, InterModuleRule>();
  private readonly strict: boolean;
  private readonly calls = new RecentCalls(8);
  private readonly reported = new Set<string>();
  private crossings = 0;

  constructor(ctx: DetectorContext) {
    super('inter-module', ctx);
    let strict = false;
    if (ctx.policyFile) {
      const p = loadPolicy(ctx.policyFile);
      strict = p.interModule?.mode === 'strict';
      for (const r of p.interModule?.rules ?? []) this.rules.set(`${r.from}>${r.to}`, r);
    }
    this.strict = strict;
    this.parameters = { mode: strict ? 'strict' : 'default', policy: ctx.policyFile ?? '' };
  }

  onTransfer(kind: TransferKind, from: number, to: number, _size: number, _n: number, cr3: number): void {
    if (kind === TransferKind.DirectCall || kind === TransferKind.IndirectCall) this.calls.push(from, to);
    if (Number.isNaN(to) || kind === TransferKind.CondNotTaken) return;
    if (kind === TransferKind.FarCall || kind === TransferKind.FarReturn || kind === TransferKind.Async || kind === TransferKind.FarJump) return;
    const mods = this.ctx.modules;
    const a = mods.find(from);
    const b = mods.find(to);
    if (a === b) return;
    if (a === null || b === null) {
      this.log.note(`no module for ${hexAddress(a === null ? from : to)}: transfer not checked`, this.ctx.offset());
      return;
    }
    this.crossings++;
    const why = kind === TransferKind.Return ? this.checkReturn(from, to) : this.checkEntry(a, b, to, kind === TransferKind.IndirectJump);
    if (why !== null) this.violation(kind, from, to, cr3, a, b, why);
  }

  private checkReturn(from: number, to: number): string | null {
    const cp = this.ctx.facts.isCallPreceded(to);
    if (cp === 1) return null;
    if (cp === NOT_MAPPED) {
      this.log.note(`no image for ${hexAddress(to)} (return target)`, this.ctx.offset());
      return null;
    }
    const fn = this.ctx.modules.functionName(from);
    if (fn !== null && STACK_SWITCHERS.test(fn)) return null;
    if (this.ctx.facts.isSigreturnTrampoline(to)) return null;
    const b = this.ctx.modules.find(to);
    if (b !== null && b.cfg()?.isAddressTaken(to - b.bias)) return null; // planted continuation (makecontext)
    return 'return into another module at a site that follows no call';
  }

  private checkEntry(a: Module, b: Module, to: number, isJump: boolean): string | null {
    const t = to - b.bias;
    // longjmp back to a setjmp call site, exception unwinding into a landing pad.
    if (isJump && (this.ctx.facts.isCallPreceded(to) === 1 || b.cfg()?.isLandingPad(t))) return null;
    const rule = this.rules.get(`${a.name}>${b.name}`);
    if (rule === undefined && this.strict) return `the policy allows no transfer from ${a.name} to ${b.name}`;
    const cfg = b.cfg();
    if (cfg === null && rule === undefined) {
      this.log.note(`entries into ${b.name} not checked: ${b.cfgUnavailableReason}`, this.ctx.offset());
      return null;
    }
    const targets = rule?.targets ?? ['*exports', '*plt', '*entry', '*address-taken'];
    for (const spec of targets) {
      if (spec === '*exports') {
        if (cfg?.isExported(t)) return null;
      } else if (spec === '*plt') {
        if (cfg?.pltAt(t)?.address === t) return null;
      } else if (spec === '*entry') {
        if (b.elf !== null && b.elf.entry === t) return null;
        if (initFini(b).has(t)) return null;
      } else if (spec === '*address-taken') {
        if (cfg?.isAddressTaken(t)) return null;
      } else if (spec.startsWith('0x')) {
        if (parseHexAddress(spec) === t) return null;
      } else if (cfg !== null && cfg.exportAddressOf(spec) === t) {
        return null;
      } else if (b.symbolize(to)?.name === spec && b.symbolize(to)?.offset === 0) {
        return null;
      }
    }
    return rule === undefined
      ? `entry into ${b.name} is not an exported function, PLT stub, entry point or address-taken function`
      : `entry into ${b.name} is not among the policy's targets for ${a.name} -> ${b.name}`;
  }

  private violation(kind: TransferKind, from: number, to: number, cr3: number, a: Module, b: Module, why: string): void {
    const key = `${from}>${to}`;
    if (this.reported.has(key)) {
      this.log.note('repeated inter-module violations on already reported edges', this.ctx.offset());
      return;
    }
    this.reported.add(key);
    const ev = this.ctx.evidence;
    this.report({
      detector: this.name,
      kind: kind === TransferKind.Return ? 'module-return' : 'module-entry',
      severity: 'high',
      message: `${TRANSFER_NAMES[kind]} from ${a.name} into ${b.name} at ${hexAddress(to)}: ${why}`,
      offset: this.ctx.offset(),
      cr3: cr3Text(cr3),
      transfer: ev.transfer(kind, from, to),
      callPath: ev.calls(this.calls),
      chain: null,
      details: { fromModule: a.name, toModule: b.name, rule: why },
    });
  }

  stats(): Record<string, number> {
    return { crossings: this.crossings };
  }
}
