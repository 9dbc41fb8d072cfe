/**
 * Inter-module control-flow policy (a COP/ret2libc mitigation): control may
 * enter another module only where that module offers entry.
 *
 * Default policy, per transfer that crosses from module A to module B:
 * - calls and jumps must land on an exported function of B, a PLT stub of
 *   B, B's ELF entry point or one of its init/fini functions, or an address-taken function of B (callbacks
 *   such as qsort comparators, atexit and .init_array functions: the caller
 *   was handed the pointer, which the static CFG records as address-taken);
 * - returns must land on a call-preceded site of B (back after a call);
 * - a return or jump that fails these is still legitimate if it is a stack
 *   switch the trace prepared (stack-switch.ts: a longjmp to a recorded
 *   setjmp resume point, the unwinder's jump into a landing pad, a fresh
 *   makecontext context and its planted return, a signal return).
 * - transfers between two mappings of one file (a program that maps its
 *   own code again elsewhere) do not cross modules;
 * - calls and jumps from code generated at run time (a JIT's, unpacked
 *   code) are not judged: that code belongs to the module that wrote it,
 *   which the trace does not name (transfers into it are not judged either).
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
import { loadPolicy, parseHexAddress, type InterModuleRule } from './policy.js';
import { StackSwitches, SwitchKind } from './stack-switch.js';
import { FunctionOrigin } from '../flow/static/disassembly.js';
import type { PtEvent } from '../events/event.js';
import { GapKind } from '../flow/control-flow.js';
import { entriesFromGeneratedCode, entriesNotChecked, noImageForReturn, noModuleForTransfer } from './unchecked-reasons.js';

export class InterModuleDetector extends DetectorBase {
  readonly parameters: Readonly<Record<string, string>>;
  private readonly rules = new Map<string, InterModuleRule>();
  private readonly strict: boolean;
  private readonly calls = new RecentCalls(8);
  private readonly reported = new Set<string>();
  private readonly switches: StackSwitches;
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
    this.switches = new StackSwitches(ctx.modules, ctx.facts, ctx.historyUnseen ?? false);
    this.parameters = { mode: strict ? 'strict' : 'default', policy: ctx.policyFile ?? '' };
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, _n: number, cr3: number): void {
    if (kind === TransferKind.DirectCall || kind === TransferKind.IndirectCall) this.calls.push(from, to);
    this.switches.observe(kind, from, to, size, null);
    if (Number.isNaN(to) || kind === TransferKind.CondNotTaken) return;
    if (kind === TransferKind.FarCall || kind === TransferKind.FarReturn || kind === TransferKind.Async || kind === TransferKind.FarJump) return;
    const mods = this.ctx.modules;
    const a = mods.find(from);
    const b = mods.find(to);
    if (a === b) return;
    // One file mapped twice (V8 remaps its embedded builtins next to its code space): one program's
    // code at two addresses, with no linkage between the copies to judge a transfer by.
    if (a !== null && b !== null && a.path !== null && a.path === b.path) return;
    if (a === null || b === null) {
      this.log.noteFor(noModuleForTransfer, a === null ? from : to, this.ctx.offset());
      return;
    }
    this.crossings++;
    const why = kind === TransferKind.Return ? this.checkReturn(to) : this.checkEntry(a, b, to);
    if (why === null) return;
    if ((kind === TransferKind.Return || kind === TransferKind.IndirectJump) && this.switches.classify(kind, to, from) !== SwitchKind.None) return;
    this.violation(kind, from, to, cr3, a, b, why);
  }

  private checkReturn(to: number): string | null {
    const cp = this.ctx.facts.isCallPreceded(to);
    if (cp === 1) return null;
    if (cp === NOT_MAPPED) {
      this.log.noteFor(noImageForReturn, to, this.ctx.offset());
      return null;
    }
    return 'return into another module at a site that follows no call';
  }

  private checkEntry(a: Module, b: Module, to: number): string | null {
    const t = to - b.bias;
    const rule = this.rules.get(`${a.name}>${b.name}`);
    if (rule === undefined && this.strict) return `the policy allows no transfer from ${a.name} to ${b.name}`;
    if (rule === undefined && a.generated) {
      // Code generated at run time belongs to whichever module wrote it, which the trace does not
      // say: a JIT's code calls its engine's internals as the engine's own code does. Like a
      // transfer into such code, one out of it is not judged (a policy rule for the pair still is).
      this.log.noteFor(entriesFromGeneratedCode, b, this.ctx.offset());
      return null;
    }
    const cfg = b.cfg();
    if (cfg === null && rule === undefined) {
      this.log.noteFor(entriesNotChecked, b, this.ctx.offset());
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
        const f = cfg === null ? -1 : cfg.functionIndex(t);
        if (f >= 0 && (cfg!.functionFlags[f] & (FunctionOrigin.Entry | FunctionOrigin.InitFini)) !== 0) return null;
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

  onEvent(ev: PtEvent): void {
    this.switches.observeEvent(ev);
  }

  onGap(kind: GapKind): void {
    if (kind !== GapKind.Disabled) this.switches.reset();
  }

  stats(): Record<string, number> {
    return { crossings: this.crossings, ...this.switches.stats() };
  }
}
