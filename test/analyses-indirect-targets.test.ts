/**
 * The shared indirect-target judgement (judgeIndirectTarget), the
 * inter-module detector and the stack-switch recognition, on a PIE program
 * and the system libc mapped at chosen bases, driven with transfers built
 * from their real addresses.
 */
import { execFileSync } from 'node:child_process';
import { realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TempDirs } from './helpers/temp-dirs.js';
import { CodeFacts } from '../src/analyses/code-facts.js';
import type { DetectorContext } from '../src/analyses/detector-base.js';
import { EvidenceBuilder } from '../src/analyses/evidence.js';
import { ALLOWED, DENIED, judgeIndirectTarget, UNCHECKED, UNKNOWN } from '../src/analyses/indirect-targets.js';
import { InterModuleDetector } from '../src/analyses/inter-module.js';
import { type Module, ModuleMap } from '../src/analyses/modules.js';
import { emptyPolicy, savePolicy } from '../src/analyses/policy.js';
import { ContextApi, StackSwitches, SwitchKind } from '../src/analyses/stack-switch.js';
import { TransferKind as K } from '../src/flow/control-flow.js';
import { loadElf } from '../src/flow/elf.js';
import { Image } from '../src/flow/image.js';
import { BlockEndKind, BlockFlag, type ModuleCfg } from '../src/flow/static/cfg.js';
import { InsnClass } from '../src/flow/instruction.js';
import { ByteSourceCache } from '../src/flow/section.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const SOURCE = `
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
volatile int sink;
__attribute__((noipa)) int classify(int x) {
  switch (x) {
  case 0: sink = 11; return 1;
  case 1: sink = 22; return 7;
  case 2: sink = 33; return x * 7;
  case 4: sink = 44; return 4;
  case 5: sink = x; return x - 9;
  case 6: sink = 66; return 3;
  case 7: sink = 77; return x << 3;
  default: sink = -1; return -1;
  }
}
__attribute__((noipa)) int interp(const unsigned char *code) {
  static const void *const ops[] = { &&op_inc, &&op_dbl, &&op_end };
  int acc = 0;
  goto *ops[*code++];
op_inc: acc++; goto *ops[*code++];
op_dbl: acc *= 2; goto *ops[*code++];
op_end: return acc;
}
__attribute__((noipa)) static int twice(int x) { return 2 * x; }
__attribute__((noipa)) int direct_only(int x) { return x ^ 0x55; }
__attribute__((noipa)) int apply(int (*f)(int), int x) { return f(x) + 1; }
jmp_buf jb;
ucontext_t uc;
void *nl_buf[5];
__attribute__((noipa)) void nl_raise(void) { __builtin_longjmp(nl_buf, 1); }
__attribute__((noipa)) int nl_protect(void) { if (__builtin_setjmp(nl_buf)) return 1; nl_raise(); return 0; }
int main(int argc, char **argv) {
  static const unsigned char prog[] = { 0, 1, 0, 2 };
  if (setjmp(jb) == 0) sink = classify(argc) + interp(prog) + apply(twice, argc) + direct_only(argc) + (int)strlen(argv[0]) + nl_protect();
  if (argc > 5) { getcontext(&uc); makecontext(&uc, (void (*)(void))abort, 0); swapcontext(&uc, &uc); longjmp(jb, 1); }
  printf("%d\\n", sink);
  return 0;
}
`;

const PROG_BASE = 0x5555_0000_0000;
const LIBC_BASE = 0x7fff_0000_0000;
const GCC_BASE = 0x7ffe_0000_0000;

let prog = '';
let libc = '';
let modules: ModuleMap;
let facts: CodeFacts;
let image: Image;
let pm: Module;
let lm: Module;
let gm: Module;
let pcfg: ModuleCfg;
let lcfg: ModuleCfg;

/** Run-time address of a symbol of the program or of libc. */
function at(m: Module, name: string): number {
  const s = m.elf!.symbols.find((x) => x.name === name || x.name.startsWith(`${name}@`));
  if (!s) throw new Error(`${name} not in ${m.name}`);
  return s.value + m.bias;
}

/** The run-time address of the PLT stub for `name` in the program. */
function plt(name: string): { stub: number; jump: number } {
  const p = pcfg.plt.find((x) => x.name === name);
  if (!p) throw new Error(`no ${name}@plt`);
  return { stub: p.address + pm.bias, jump: p.jumpAddress + pm.bias };
}

function context(params: Record<string, string> = {}, policyFile: string | null = null): DetectorContext {
  return { image, modules, facts, evidence: new EvidenceBuilder(facts, modules), thread: { pid: null, tid: null }, offset: () => 0, params, policyFile, monitor: [], openTrace: null, config: null };
}

beforeAll(() => {
  const dir = temps.make('ptscope-judge-');
  writeFileSync(join(dir, 'j.c'), SOURCE);
  prog = join(dir, 'j');
  execFileSync('gcc', ['-O2', '-fpie', '-pie', '-fcf-protection=none', '-o', prog, join(dir, 'j.c')]);
  libc = realpathSync(execFileSync('gcc', ['-print-file-name=libc.so.6'], { encoding: 'utf8' }).trim());
  image = new Image();
  const files = new ByteSourceCache();
  modules = new ModuleMap();
  const libgcc = realpathSync(execFileSync('gcc', ['-print-file-name=libgcc_s.so.1'], { encoding: 'utf8' }).trim());
  for (const [path, base] of [[prog, PROG_BASE], [libc, LIBC_BASE], [libgcc, GCC_BASE]] as const) {
    const loaded = loadElf(image, files, path, base);
    modules.addElf(path, loaded.elf, loaded.loadOffset);
  }
  facts = new CodeFacts(image);
  pm = modules.find(PROG_BASE + 0x1000)!;
  lm = modules.find(LIBC_BASE + 0x30000)!;
  gm = modules.find(GCC_BASE + 0x3000)!;
  pcfg = pm.cfg()!;
  lcfg = lm.cfg()!;
}, 60_000);

describe('judgeIndirectTarget', () => {
  it('a bounded switch may jump to its cases only', () => {
    const f = pcfg.functionByName('classify');
    const jt = pcfg.jumpTables.find((t) => pcfg.functionAt(t.jumpAddress) === f && t.source === 'table')!;
    expect(jt.bounded).toBe(true);
    const jump = jt.jumpAddress + pm.bias;
    for (const t of new Set(jt.targets)) expect(judgeIndirectTarget(modules, jump, t + pm.bias, true)).toBe(ALLOWED);
    // Another block of the same function that is no case (the entry block's successor), and another function's block.
    const blocks = [...pcfg.blocksOf(f)].map((b) => pcfg.blockStart[b]).filter((a) => !jt.targets.includes(a) && a !== pcfg.functionEntry[f]);
    expect(blocks.length).toBeGreaterThan(0);
    expect(judgeIndirectTarget(modules, jump, blocks[0] + pm.bias, true)).toBe(DENIED);
    expect(judgeIndirectTarget(modules, jump, at(pm, 'direct_only') + 1, true)).toBe(DENIED);
  });

  it('a computed goto through a table of label addresses may reach its labels', () => {
    const f = pcfg.functionByName('interp');
    const gotos = pcfg.jumpTables.filter((t) => pcfg.functionAt(t.jumpAddress) === f && t.targets.length > 0);
    expect(gotos.length).toBeGreaterThanOrEqual(1);
    for (const jt of gotos) {
      expect(new Set(jt.targets).size).toBe(3);
      for (const t of jt.targets) expect(judgeIndirectTarget(modules, jt.jumpAddress + pm.bias, t + pm.bias, true)).toBe(ALLOWED);
    }
  });

  it('an indirect call may reach pointer-callable function entries only', () => {
    const site = at(pm, 'apply') + 4;
    expect(judgeIndirectTarget(modules, site, at(pm, 'twice'), false)).toBe(ALLOWED); // address taken
    expect(judgeIndirectTarget(modules, site, at(pm, 'main'), false)).toBe(ALLOWED); // exported? address-taken by _start
    expect(judgeIndirectTarget(modules, site, at(lm, 'puts'), false)).toBe(ALLOWED); // exported by libc
    expect(judgeIndirectTarget(modules, site, at(pm, 'direct_only') + 3, false)).toBe(DENIED); // mid-function
    expect(judgeIndirectTarget(modules, site, 0x1234, false)).toBe(UNKNOWN); // no module
  });

  it('a PLT stub may jump only where the dynamic linker binds its import', () => {
    const printf = plt('printf');
    expect(judgeIndirectTarget(modules, printf.jump, at(lm, 'printf'), true)).toBe(ALLOWED);
    expect(judgeIndirectTarget(modules, printf.jump, at(lm, 'system'), true)).toBe(DENIED); // a GOT overwrite
    expect(judgeIndirectTarget(modules, printf.jump, printf.jump + 6, true)).toBe(ALLOWED); // lazy binding: the stub's push/jmp
    // strlen is an IFUNC in libc: the slot holds one of the resolver's choices.
    const strlen = plt('strlen');
    const resolver = lcfg.exportAddressOf('strlen');
    const choices = lcfg.ifuncTargets(resolver);
    expect(choices.length).toBeGreaterThan(1);
    for (const c of choices) expect(judgeIndirectTarget(modules, strlen.jump, c + lm.bias, true)).toBe(ALLOWED);
    expect(judgeIndirectTarget(modules, strlen.jump, at(lm, 'memcpy') + 16, true)).toBe(DENIED);
  });

  it('a jump into another module may reach its function entries (tail call through a pointer), not their middles', () => {
    const jump = at(pm, 'interp') + 0x20;
    expect(judgeIndirectTarget(modules, jump, at(lm, 'abort'), true)).toBe(ALLOWED);
    expect(judgeIndirectTarget(modules, jump, at(lm, 'abort') + 7, true)).toBe(DENIED);
  });

  it('an unrecovered jump to a well-decoded block of its own function is unchecked, never denied', () => {
    // libc has jumps whose set is only a sample (tables without a bound): find one and a block of its function off the sample.
    const jt = lcfg.jumpTables.find((t) => !t.bounded && t.source === 'table' && t.targets.length > 0);
    expect(jt).toBeDefined();
    const f = lcfg.functionAt(jt!.jumpAddress);
    const other = [...lcfg.blocksOf(f)]
      .map((b) => b)
      .find((b) => !jt!.targets.includes(lcfg.blockStart[b]) && (lcfg.blockFlags[b] & (BlockFlag.Pointer | BlockFlag.JumpTableTarget)) === 0);
    expect(other).toBeDefined();
    expect(judgeIndirectTarget(modules, jt!.jumpAddress + lm.bias, lcfg.blockStart[other!] + lm.bias, true)).toBe(UNCHECKED);
    expect(judgeIndirectTarget(modules, jt!.jumpAddress + lm.bias, jt!.targets[0] + lm.bias, true)).toBe(ALLOWED);
  });
});

describe('inter-module detector', () => {
  it('allows calls to exports, returns to call sites and PLT jumps to bound imports', () => {
    const d = new InterModuleDetector(context());
    // A real call site of main.
    const main = pcfg.functionByName('main');
    const b = [...pcfg.blocksOf(main)].find((x) => pcfg.blockEndKind[x] === 3 /* Call */)!;
    const site = pcfg.blockLast[b] + pm.bias;
    const size = pcfg.blockEnd[b] - pcfg.blockLast[b];
    d.onTransfer(K.DirectCall, site, plt('printf').stub, size, 3, NaN);
    d.onTransfer(K.IndirectJump, plt('printf').jump, at(lm, 'printf'), 6, 1, NaN);
    d.onTransfer(K.Return, at(lm, 'printf') + 0x40, site + size, 1, 20, NaN);
    expect(d.findings()).toEqual([]);
    expect(d.stats().crossings).toBe(2);
  });

  it('flags entry into the middle of another module and a return to a site that follows no call', () => {
    const d = new InterModuleDetector(context());
    d.onTransfer(K.IndirectCall, at(pm, 'apply') + 4, at(lm, 'system') + 9, 2, 3, NaN);
    d.onTransfer(K.Return, at(pm, 'twice') + 3, at(lm, 'system'), 1, 2, NaN);
    const kinds = d.findings().map((f) => f.kind);
    expect(kinds).toEqual(['module-entry', 'module-return']);
    expect(d.findings()[0].details.toModule).toBe('libc.so.6');
    // The same edge again is counted, not reported twice.
    d.onTransfer(K.IndirectCall, at(pm, 'apply') + 4, at(lm, 'system') + 9, 2, 3, NaN);
    expect(d.findings()).toHaveLength(2);
  });

  it('calls out of code generated at run time are not judged (its module is not known); out of a raw image they are', () => {
    const dir = temps.make('ptscope-im-rt-');
    const code = join(dir, 'code.bin');
    writeFileSync(code, Uint8Array.from([0x90, 0x90, 0x90, 0x90, 0xff, 0xd0, 0xc3, 0xcc]));
    const RT = 0x7e00_0000_0000;
    const RAW = 0x7e00_1000_0000;
    modules.addMapping(code, 0, 8, RT, '[runtime]', true);
    modules.addMapping(code, 0, 8, RAW, 'blob.bin');
    const d = new InterModuleDetector(context());
    d.onTransfer(K.IndirectCall, RT + 4, at(lm, 'system') + 9, 2, 3, NaN);
    expect(d.findings()).toEqual([]);
    expect(d.unchecked().map((u) => u.reason).join('\n')).toMatch(/entries into libc\.so\.6 from code generated at run time not checked/);
    d.onTransfer(K.IndirectCall, RAW + 4, at(lm, 'system') + 9, 2, 3, NaN);
    expect(d.findings().map((f) => f.details.fromModule)).toEqual(['blob.bin']);
  });

  it('a transfer between two mappings of one file does not cross modules', () => {
    // libc's text mapped a second time elsewhere (as V8 remaps its builtins): a jump from the copy into the original.
    const seg = lm.elf!.loadSegments().find((x) => (x.flags & 1) !== 0)!;
    const COPY = 0x7e00_2000_0000;
    const copy = modules.addMapping(lm.path!, seg.offset, seg.filesz, COPY + seg.offset, 'libc.so.6');
    expect(copy).not.toBe(lm);
    const d = new InterModuleDetector(context());
    d.onTransfer(K.IndirectJump, copy.start + 0x40, at(lm, 'system') + 9, 2, 3, NaN);
    expect(d.findings()).toEqual([]);
    expect(d.stats().crossings).toBe(0);
  });

  it('a strict policy allows only its rules; a rule names allowed targets', () => {
    const dir = temps.make('ptscope-im-');
    const p = emptyPolicy();
    p.interModule = { mode: 'strict', rules: [{ from: pm.name, to: 'libc.so.6', targets: ['puts'] }] };
    const file = join(dir, 'p.json');
    savePolicy(file, p);
    const d = new InterModuleDetector(context({}, file));
    d.onTransfer(K.IndirectCall, at(pm, 'apply') + 4, at(lm, 'puts'), 2, 3, NaN);
    expect(d.findings()).toEqual([]);
    d.onTransfer(K.IndirectCall, at(pm, 'apply') + 4, at(lm, 'printf'), 2, 3, NaN);
    expect(d.findings().map((f) => f.details.rule)).toEqual([`entry into libc.so.6 is not among the policy's targets for ${pm.name} -> libc.so.6`]);
    d.onTransfer(K.DirectCall, at(lm, 'puts') + 4, at(pm, 'main'), 5, 3, NaN);
    expect(d.findings()[1].details.rule).toBe(`the policy allows no transfer from libc.so.6 to ${pm.name}`);
  });
});

describe('stack switches', () => {
  it('knows the context APIs by the called symbol or PLT import', () => {
    const s = new StackSwitches(modules, facts);
    expect(s.apiAt(plt('_setjmp').stub)).toBe(ContextApi.Save);
    expect(s.apiAt(at(lm, 'getcontext'))).toBe(ContextApi.Save);
    expect(s.apiAt(at(lm, 'swapcontext'))).toBe(ContextApi.SaveAndSwitch);
    expect(s.apiAt(plt('makecontext').stub)).toBe(ContextApi.Make);
    expect(s.apiAt(at(lm, 'longjmp'))).toBe(ContextApi.None); // restoring records nothing
    expect(s.apiAt(at(pm, 'classify'))).toBe(ContextApi.None);
  });

  it('a longjmp is legitimate only to a resume point an earlier setjmp call recorded', () => {
    const s = new StackSwitches<number>(modules, facts);
    const longjmpSite = at(lm, 'longjmp') + 0x30;
    const site = at(pm, 'main') + 0x20;
    // Before any setjmp: nothing to resume.
    expect(s.classify(K.IndirectJump, site + 5)).toBe(SwitchKind.None);
    s.observe(K.DirectCall, site, plt('_setjmp').stub, 5, 7);
    expect(s.mayBeSwitch(site + 5, longjmpSite)).toBe(true);
    expect(s.classify(K.IndirectJump, site + 5)).toBe(SwitchKind.ContextResume);
    expect(s.resumeTags).toEqual([7]);
    // The same site saved again (a nested activation of its function): both kept, oldest first.
    s.observe(K.DirectCall, site, plt('_setjmp').stub, 5, 9);
    expect(s.classify(K.IndirectJump, site + 5)).toBe(SwitchKind.ContextResume);
    expect(s.resumeTags).toEqual([7, 9]);
    // A forged jmp_buf that points elsewhere (a gadget, a function) is not a resume point.
    expect(s.classify(K.IndirectJump, at(pm, 'direct_only'))).toBe(SwitchKind.None);
    expect(s.classify(K.Return, at(lm, 'system'))).toBe(SwitchKind.None);
  });

  it('a nonlocal goto (__builtin_longjmp) is a jump that loads the stack pointer first, to a code label no function starts at', () => {
    const s = new StackSwitches(modules, facts);
    // nl_raise's jump, and the label nl_protect saves (a pointer block of its own that is no entry).
    const raise = facts.straightLine(at(pm, 'nl_raise'), 16);
    const jump = raise[raise.length - 1];
    expect(jump.iclass).toBe(InsnClass.Jump);
    expect(raise.some((i) => /^mov rsp, qword ptr \[/.test(i.text))).toBe(true);
    const protect = pcfg.functionAt(at(pm, 'nl_protect') - pm.bias);
    const labels = [...pcfg.blocksOf(protect)].filter((b) => (pcfg.blockFlags[b] & BlockFlag.Pointer) !== 0 && pcfg.functionIndex(pcfg.blockStart[b]) < 0);
    expect(labels.length).toBe(1);
    const label = pcfg.blockStart[labels[0]] + pm.bias;
    expect(s.mayBeSwitch(label, jump.ip)).toBe(true);
    expect(s.classify(K.IndirectJump, label, jump.ip)).toBe(SwitchKind.NonlocalGoto);
    expect(s.inGotoFunction(at(pm, 'nl_protect'))).toBe(true);
    expect(s.inGotoFunction(at(pm, 'nl_raise'))).toBe(false);
    // Not a label: a function entry, the middle of a block, a label of a function that takes none.
    expect(s.classify(K.IndirectJump, at(pm, 'direct_only'), jump.ip)).toBe(SwitchKind.None);
    expect(s.classify(K.IndirectJump, label + 1, jump.ip)).toBe(SwitchKind.None);
    // A jump that does not load the stack pointer (the interpreter's computed goto) is no nonlocal goto, to the label either.
    const interp = pcfg.functionAt(at(pm, 'interp') - pm.bias);
    const dispatch = [...pcfg.blocksOf(interp)].find((b) => pcfg.blockEndKind[b] === BlockEndKind.IndirectJump)!;
    const dispatchIp = pcfg.blockLast[dispatch] + pm.bias;
    expect(s.loadsStackFirst(dispatchIp)).toBe(false);
    expect(s.mayBeSwitch(label, dispatchIp)).toBe(false);
    expect(s.classify(K.IndirectJump, label, dispatchIp)).toBe(SwitchKind.None);
    expect(s.classify(K.IndirectJump, label)).toBe(SwitchKind.None);
  });

  it('makecontext allows one fresh entry into a pointer-callable function and its planted return', () => {
    const s = new StackSwitches(modules, facts);
    // libc's planted continuation (__start_context, not exported) is an address-taken entry no call precedes.
    const planted = [...lcfg.addressTaken].map((a) => a + lm.bias).find((a) => facts.isCallPreceded(a) === 0 && lcfg.functionIndex(a - lm.bias) >= 0)!;
    expect(s.classify(K.Return, at(pm, 'twice'))).toBe(SwitchKind.None);
    expect(s.classify(K.Return, planted)).toBe(SwitchKind.None);
    s.observe(K.DirectCall, at(pm, 'main') + 0x30, plt('makecontext').stub, 5, null);
    expect(s.classify(K.Return, at(pm, 'direct_only') + 2)).toBe(SwitchKind.None); // not an entry
    expect(s.classify(K.Return, at(pm, 'twice'))).toBe(SwitchKind.FreshContext);
    expect(s.classify(K.Return, at(pm, 'twice'))).toBe(SwitchKind.None); // used up
    expect(s.classify(K.Return, planted)).toBe(SwitchKind.PlantedReturn);
    expect(s.classify(K.Return, at(pm, 'classify'))).toBe(SwitchKind.None); // planted only in libc
  });

  it('an unwinder jump is legitimate only to a landing pad, and only while an unwind runs', () => {
    expect(lcfg.landingPads.length).toBeGreaterThan(0);
    const pad = lcfg.landingPads[0] + lm.bias;
    const s = new StackSwitches(modules, facts);
    expect(s.apiAt(at(gm, '_Unwind_RaiseException'))).toBe(ContextApi.Unwind);
    expect(s.classify(K.IndirectJump, pad)).toBe(SwitchKind.None);
    s.observe(K.DirectCall, at(pm, 'main') + 0x40, at(gm, '_Unwind_RaiseException'), 5, null);
    expect(s.mayBeSwitch(pad, NaN)).toBe(true);
    expect(s.classify(K.IndirectJump, at(pm, 'classify') + 3)).toBe(SwitchKind.None); // not a pad
    expect(s.classify(K.IndirectJump, pad)).toBe(SwitchKind.LandingPad);
    expect(s.classify(K.IndirectJump, pad)).toBe(SwitchKind.None); // the unwind ended there
    // The LSDA maps each call site to its pad: the shadow stack pops to that frame.
    const i = lcfg.callSitePad.indexOf(lcfg.landingPads[0]);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(lcfg.landingPadForReturn(lcfg.callSiteStart[i] + 1)).toBe(lcfg.callSitePad[i]);
    expect(Number.isNaN(lcfg.landingPadForReturn(lcfg.functionEntry[0] + 1))).toBe(true);
  });

  it('a sigreturn trampoline is a legitimate return target only after a signal was delivered', () => {
    const s = new StackSwitches(modules, facts);
    // glibc's __restore_rt (not exported): sigaction stores its address for the kernel.
    const restore = [...lcfg.codePointers].map((a) => a + lm.bias).find((a) => facts.isSigreturnTrampoline(a))!;
    expect(restore).toBeDefined();
    expect(facts.isSigreturnTrampoline(restore)).toBe(true);
    expect(s.classify(K.Return, restore)).toBe(SwitchKind.None);
    s.observe(K.Async, at(pm, 'main') + 3, at(pm, 'twice'), 0, null);
    expect(s.classify(K.Return, restore)).toBe(SwitchKind.SignalReturn);
    expect(s.classify(K.Return, restore)).toBe(SwitchKind.None);
  });
});
