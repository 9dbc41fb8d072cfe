/**
 * `ptscope crash`: from a trace bundle of a program that died of a signal
 * and its core dump to the instructions that caused the crash.
 *
 * 1. The core: `--core`, else `<bundle>/core`, else a re-run of the
 *    program (core-capture.ts). It must belong to the trace: the final IP
 *    is the last traced instruction or the target of its branch, and the
 *    code bytes the trace executed are the core's.
 * 2. The window: the last instructions of the trace after its last gap.
 * 3. Reverse execution recovers registers and addresses (reverse-execution.ts).
 * 4. The faulting operand: a bad branch target (ret: the return address
 *    slot; call/jmp: the register or memory operand) or the address
 *    registers of the faulting memory access.
 * 5. Backward taint to the root cause (taint.ts). Instructions in a
 *    library are charged to the program's call into it.
 *
 * The report says what it could not establish; without a match between
 * core and trace it names no root cause.
 */
import { Mnemonic } from '../../flow/iced.js';
import { ANY_ASID } from '../../flow/address-space.js';
import { CoreFile } from '../../sources/core-file.js';
import { importBundle } from '../../sources/import/bundle-import.js';
import { primaryStream, type Recording, type TraceStream } from '../../sources/model/recording.js';
import { traceInput } from '../trace-input.js';
import { CodeLocations, type CodeLocation } from './code-locations.js';
import { captureCore } from './core-capture.js';
import { decodeFacts, GPR_COUNT, RAX, RDI, RSP, type InsnFacts } from './instruction-facts.js';
import { GAP_NAMES, lastInstructions } from './instruction-window.js';
import { firstHeapOverflow, type HeapWrite } from './heap-overflow-scan.js';
import { readsInput, routineOf, summariseCall, type LibraryCall } from './library-routines.js';
import { ReverseExecution } from './reverse-execution.js';
import { frameAllocation, isStackEnd, MIN_RECURSION, recursionAtCrash } from './stack-exhaustion.js';
import { backwardTaint, type FaultSpec, type HeapChunk, type StepKind, type TaintContext } from './taint.js';
import { hex } from '../finding.js';

export interface CrashOptions {
  core?: string;
  /** The crashed process to analyse, by the recording's core of it (when several crashed). */
  pid?: number;
  /** Instructions before the crash to analyse (default 300000). */
  window?: number;
  /** Re-run the program for a core when the bundle has none (default true). */
  rerun?: boolean;
  /** Confine that re-run (default true; only the command line may turn it off). */
  sandbox?: boolean;
}

export interface ReportPlace {
  ip: string;
  instruction: string;
  location: CodeLocation;
}

export interface ChainStep extends ReportPlace {
  kind: StepKind;
  what: string;
  /** Instructions between this step and the crash. */
  distance: number;
}

export interface RootCause extends ChainStep {
  rank: number;
  /** For an instruction in a library: the program's call that ran it. */
  callSite: ReportPlace | null;
  /** The chain from this root cause to the crash. */
  chain: ChainStep[];
}

export interface CrashReport {
  bundle: string;
  program: string;
  signal: string | null;
  crash: ReportPlace & { what: string; faultAddress: string | null };
  core: { path: string; source: 'option' | 'bundle' | 're-run'; matchesTrace: boolean; checks: string[] };
  window: { instructions: number; traced: number; lastGap: string | null };
  reverseExecution: { knownRegisterValues: number; resolvedAddresses: number; memoryAccesses: number; conflicts: number; unresolvedStores: number };
  /**
   * Stores whose address reverse execution could not recover, met while the
   * walk held tainted memory: how many were excluded by the value they store
   * (from the core), by the heap objects' lifetimes, and how many the
   * verdict assumes did not alias.
   */
  aliasing: { byValue: number; byHeapLayout: number; assumed: number };
  /** Calls of libc's copy and string routines taken as one block write. */
  summarisedCalls: number;
  /** Heap objects seen allocated in the window (malloc/calloc/realloc). */
  heapObjects: { start: string; size: number; freed: boolean }[];
  rootCauses: RootCause[];
  confidence: 'established' | 'conditional' | 'none';
  notes: string[];
}

/** Bound on the library calls summarised in one window (each may scan the window's stores). */
const MAX_SUMMARISED_CALLS = 5000;

/** The recording's core of process `pid`, or a one-line error naming the processes it has cores of. */
function coreOfProcess(recording: Recording, pid: number): string {
  const c = recording.cores.find((k) => k.pid === pid);
  if (c !== undefined) return c.path;
  const have = recording.cores.map((k) => k.pid);
  throw new Error(`${recording.name}: no core of process ${pid} (${have.length > 0 ? `cores of process${have.length > 1 ? 'es' : ''} ${have.join(', ')}` : 'the recording lists no core by process'})`);
}

export function analyzeCrash(from: string | Recording, options: CrashOptions = {}): CrashReport {
  const recording = typeof from === 'string' ? importBundle(from) : from;
  const bundle = recording.name;
  const notes: string[] = [];
  let corePath = options.core ?? null;
  let source: CrashReport['core']['source'] = 'option';
  if (options.pid !== undefined) {
    if (corePath !== null) throw new Error('give --core or --pid, not both');
    corePath = coreOfProcess(recording, options.pid);
    source = 'bundle';
  }
  if (corePath === null) {
    corePath = recording.core;
    source = 'bundle';
  }
  if (corePath === null) {
    if (options.rerun === false || recording.root === null) throw new Error(`${bundle}: the recording has no core file; pass --core FILE`);
    corePath = captureCore(recording.root, { sandbox: options.sandbox !== false });
    source = 're-run';
    notes.push('the bundle had no core: it was taken from a re-run of the program (checked against the trace below)');
  }
  const core = CoreFile.load(corePath);
  const stream = crashedStream(recording, core.pid);
  const input = traceInput(recording, stream);
  notes.unshift(...input.notes);
  // A stream an exec started ran the process's later program (`sh -c prog` execs prog in place).
  const crashedProcess = recording.processes.find((p) => p.pid === stream.pid);
  const programPath = (stream.program !== undefined ? crashedProcess?.program?.path : null) ?? recording.program?.path ?? null;
  // The signal of the process the core is of (a shell's child may crash while the shell goes on).
  const signal = crashedProcess?.exit?.signal ?? recording.exit?.signal ?? null;
  const win = lastInstructions(input, options.window ?? 300_000);
  const locs = new CodeLocations(input.stream.mappings, programPath);
  let ips = win.ips.subarray(win.contiguousFrom);
  if (win.lastGap !== null && win.contiguousFrom > 0) {
    notes.push(`trace gap (${GAP_NAMES[win.lastGap.kind]}) ${win.lastGap.instructionsAfter} instructions before the crash: nothing before it is analysed`);
  }
  if (win.decodeErrors > 0) notes.push(`${win.decodeErrors} decode errors in the trace`);
  if (ips.length === 0) throw new Error(`${bundle}: the trace holds no instructions`);

  // Decode each address once.
  const cache = new Map<number, InsnFacts | null>();
  const buf = new Uint8Array(15);
  const factsAt = (ip: number): InsnFacts | null => {
    let f = cache.get(ip);
    if (f !== undefined) return f;
    buf.fill(0);
    input.image.read(buf, ip, 15, ANY_ASID);
    f = decodeFacts(ip, buf);
    cache.set(ip, f);
    return f;
  };

  // Does the core belong to this trace? Where exactly did it fault?
  const checks: string[] = [];
  let matches = true;
  const last = factsAt(ips[ips.length - 1]);
  const rip = core.rip;
  let badTarget = false;
  if (last === null) {
    matches = false;
    checks.push(`the last traced instruction at ${hex(ips[ips.length - 1])} cannot be decoded`);
  } else if (rip === last.ip) {
    checks.push(`the core's rip ${hex(rip)} is the last traced instruction`);
  } else if ((last.isRet || last.isCall || last.mnemonic === Mnemonic.Jmp) && !locs.moduleAt(rip)) {
    badTarget = true;
    checks.push(`the core's rip ${hex(rip)} is the target of the last traced instruction (${last.text}), outside every image`);
  } else if (rip === last.ip + last.size || locs.moduleAt(rip) !== null) {
    // The faulting instruction itself was not traced: add it.
    const f = factsAt(rip);
    if (f === null) {
      matches = false;
      checks.push(`the core's rip ${hex(rip)} is not an instruction`);
    } else {
      const more = new Float64Array(ips.length + 1);
      more.set(ips);
      more[ips.length] = rip;
      ips = more;
      checks.push(`the core's rip ${hex(rip)} follows the last traced instruction: the faulting instruction`);
    }
  } else {
    matches = false;
    checks.push(`the core's rip ${hex(rip)} does not continue the trace (its last instruction is at ${hex(last.ip)})`);
  }
  // Code bytes: the core's memory must hold the code the trace ran.
  let codeMismatch = 0;
  for (const [ip, f] of cache) {
    if (f === null) continue;
    const have = core.bytesAt(ip, f.size);
    if (have.length < f.size) continue;
    const want = new Uint8Array(f.size);
    input.image.read(want, ip, f.size, ANY_ASID);
    if (!have.every((x, i) => x === want[i])) codeMismatch++;
  }
  if (codeMismatch > 0) {
    matches = false;
    checks.push(`${codeMismatch} executed instructions differ between the core's memory and the trace's images`);
  } else checks.push('the core holds the code bytes the trace executed');
  if (core.files.length > 0) {
    const names = new Set(core.files.map((f) => f.path));
    if (programPath !== null && !names.has(programPath)) {
      matches = false;
      checks.push(`the core's file mappings (NT_FILE) do not include ${programPath}`);
    }
  }

  const n = ips.length;
  const facts: (InsnFacts | null)[] = new Array(n);
  for (let t = 0; t < n; t++) facts[t] = factsAt(ips[t]);
  // The core's rip is the window's last instruction: it faulted (or follows the system call that sent the
  // signal), so the core is the state before it. A rep string instruction is the exception: a fault
  // leaves its registers where the iterations done so far took them (SDM Vol. 2B, REP), as if it had run.
  const lastDidNotRun = matches && rip === ips[n - 1] && facts[n - 1] !== null && facts[n - 1]!.string === null;
  const rev = new ReverseExecution(facts, core, (ip) => locs.moduleAt(ip) !== null && !locs.isMain(ip), lastDidNotRun);
  rev.run();

  // Call structure: the program's call site for library code; return-address and saved-rbp slots.
  const callerOf = new Int32Array(n).fill(-1);
  const callStack: number[] = [];
  const mainCall: number[] = [];
  const controlSlots: TaintContext['controlSlots'] = [];
  const openRet = new Map<number, number>();
  const openRbp = new Map<number, number>();
  // Stack-protector canaries: the slot a function stores fs:[0x28] in (glibc's x86-64 stack guard) is live until it returns.
  const openCanary = new Map<number, number>();
  let canaryLoad: { reg: number; t: number } | null = null;
  const chunks: HeapChunk[] = [];
  for (let t = 0; t < n; t++) {
    const f = facts[t];
    const inMain = locs.isMain(ips[t]);
    if (!inMain && mainCall.length > 0) callerOf[t] = mainCall[mainCall.length - 1];
    if (f === null) continue;
    const S = rev.stackAddr[t];
    const m = f.mem;
    if (m !== null && m.seg === 'fs' && m.base < 0 && m.index < 0 && m.disp === 0x28n && m.read && f.mnemonic === Mnemonic.Mov && f.ops[0]?.kind === 'reg') {
      canaryLoad = { reg: f.ops[0].ref.reg, t };
    } else if (canaryLoad !== null && t - canaryLoad.t <= 4 && f.mnemonic === Mnemonic.Mov && m?.write === true && f.ops[1]?.kind === 'reg' && f.ops[1].ref.reg === canaryLoad.reg && !Number.isNaN(rev.addr[t])) {
      openCanary.set(rev.addr[t], t);
      canaryLoad = null;
    }
    if (f.isCall) {
      callStack.push(t);
      mainCall.push(inMain ? t : mainCall.length > 0 ? mainCall[mainCall.length - 1] : -1);
      if (!Number.isNaN(S)) openRet.set(S, t);
      if (inMain) trackAllocation(t);
    } else if (f.isRet) {
      callStack.pop();
      mainCall.pop();
      // The returning frame's canaries (below its return address) die with it.
      if (!Number.isNaN(S)) {
        for (const [addr, from] of openCanary) {
          if (addr >= S) continue;
          controlSlots.push({ addr, from, to: t, what: 'stack-protector canary' });
          openCanary.delete(addr);
        }
      }
      if (!Number.isNaN(S) && openRet.has(S)) {
        controlSlots.push({ addr: S, from: openRet.get(S)!, to: t, what: 'return address' });
        openRet.delete(S);
      }
    } else if (f.mnemonic === Mnemonic.Push && f.ops[0]?.kind === 'reg' && f.ops[0].ref.reg === 5 && !Number.isNaN(S)) {
      openRbp.set(S, t);
    } else if ((f.stack === 'pop' || f.stack === 'leave') && !Number.isNaN(S) && openRbp.has(S)) {
      controlSlots.push({ addr: S, from: openRbp.get(S)!, to: t, what: 'saved frame pointer' });
      openRbp.delete(S);
    }
  }
  for (const [addr, from] of openRet) controlSlots.push({ addr, from, to: n, what: 'return address' });
  for (const [addr, from] of openRbp) controlSlots.push({ addr, from, to: n, what: 'saved frame pointer' });
  for (const [addr, from] of openCanary) controlSlots.push({ addr, from, to: n, what: 'stack-protector canary' });
  /** The canary stored last before window index `before` and still live at the crash (the frame that called there). */
  const liveCanaryBefore = (before: number): number | null => {
    let best: number | null = null;
    for (const [addr, from] of openCanary) if (from < before && (best === null || from > openCanary.get(best)!)) best = addr;
    return best;
  };

  function trackAllocation(c: number): void {
    // The function the call reaches: the import its PLT slot names, else the first library
    // instruction outside the dynamic loader (a lazily bound PLT entry runs the loader's resolver first).
    let name: string | null = calledName(c);
    for (let u = c + 1; name === null && u < Math.min(n, c + 5000); u++) {
      const mod = locs.moduleAt(ips[u]);
      if (mod === null || mod.isMain || /\/ld-linux[^/]*$|\/ld-[^/]*\.so/.test(mod.path)) continue;
      // glibc exports its allocator under both names (malloc, __libc_malloc) at one address.
      name = locs.symbolName(ips[u])?.replace(/^__libc_/, '') ?? null;
      break;
    }
    if (name === null) return;
    // glibc's other names for its allocator's entries (one address, several symbols).
    name = name.replace(/^__libc_/, '').replace(/^cfree$/, 'free');
    const f = facts[c]!;
    const back = f.ip + f.size;
    if (name === 'malloc' || name === 'calloc' || name === 'realloc') {
      let r = c + 1;
      while (r < n && ips[r] !== back) r++;
      if (r >= n) return;
      const p = rev.reg(r, RAX);
      const size = name === 'calloc' ? mul(rev.reg(c, RDI), rev.reg(c, 6)) : rev.reg(c, name === 'realloc' ? 6 : RDI);
      if (p === null || size === null || p === 0n) return;
      const chunk = Math.max(32, Number((size + 8n + 15n) & ~15n));
      chunks.push({ start: Number(p), end: Number(p) + chunk - 8, allocatedAt: r, freedAt: -1 });
    } else if (name === 'free') {
      const p = rev.reg(c, RDI);
      const ch = p === null ? undefined : chunks.find((x) => x.start === Number(p) && x.freedAt < 0);
      if (ch !== undefined) ch.freedAt = c;
    }
  }

  const libraryCalls = summariseLibraryCalls();

  /** The routine the call at c reaches: the import (or IFUNC) its PLT slot names, else the symbol of the code it ran. */
  function calledName(c: number): string | null {
    const f = facts[c]!;
    // `call [got]` (-fno-plt), or the first jump through memory of a PLT stub (after endbr64).
    if (f.mem !== null && f.mem.base < 0 && f.mem.index < 0 && !Number.isNaN(rev.addr[c])) return locs.importName(rev.addr[c]);
    for (let u = c + 1; u < Math.min(n, c + 3); u++) {
      const g = facts[u];
      if (g === null) break;
      if (g.mnemonic === Mnemonic.Jmp && g.mem !== null && g.mem.base < 0 && g.mem.index < 0 && !Number.isNaN(rev.addr[u])) {
        const name = locs.importName(rev.addr[u]);
        if (name !== null) return name;
        // The slot names nothing: the code the resolved slot led to, by its own symbol.
        const target = u + 1 < n ? locs.moduleAt(ips[u + 1]) : null;
        return target === null || target.isMain ? null : locs.functionAt(ips[u + 1]);
      }
      if (g.mnemonic !== Mnemonic.Endbr64 && g.mnemonic !== Mnemonic.Nop) break;
    }
    const callee = c + 1 < n ? locs.moduleAt(ips[c + 1]) : null;
    return callee === null || callee.isMain ? null : locs.functionAt(ips[c + 1]);
  }

  /** Calls of libc's copy and string routines that returned inside the window, summarised (library-routines.ts). */
  function summariseLibraryCalls(): LibraryCall[] {
    const out: LibraryCall[] = [];
    // Where each call returned: the instruction after the ret that comes back to its fall-through.
    const open: number[] = [];
    const returnOf = new Int32Array(n).fill(-1);
    for (let t = 0; t < n; t++) {
      const f = facts[t];
      if (f?.isCall) open.push(t);
      else if (f?.isRet && t + 1 < n) {
        let k = open.length - 1;
        while (k >= 0 && facts[open[k]]!.ip + facts[open[k]]!.size !== ips[t + 1]) k--;
        if (k >= 0) {
          returnOf[open[k]] = t + 1;
          open.length = k;
        }
      }
    }
    let stores: { t: number; a: number; size: number }[] | null = null;
    const writtenAfter = (t0: number, a: number, len: number): boolean => {
      stores ??= storesInWindow();
      return stores.some((s) => s.t >= t0 && s.a < a + len && a < s.a + s.size);
    };
    const unsummarised = new Set<string>();
    for (let c = 0; c < n && out.length < MAX_SUMMARISED_CALLS; c++) {
      if (!facts[c]?.isCall || returnOf[c] < 0) continue;
      const name = calledName(c);
      const routine = name === null ? null : routineOf(name);
      if (routine === null) continue;
      const s = summariseCall(routine, c, returnOf[c], rev, core, (a, len) => writtenAfter(returnOf[c], a, len));
      // Only the program's own calls are worth a note; the loader's and libc's internal ones are many.
      if (typeof s === 'string') {
        if (locs.isMain(ips[c])) unsummarised.add(s);
      } else out.push(s);
    }
    for (const why of unsummarised) notes.push(`a library call is followed instruction by instruction: ${why}`);
    return out;
  }

  function storesInWindow(): { t: number; a: number; size: number }[] {
    const out: { t: number; a: number; size: number }[] = [];
    for (let t = 0; t < n; t++) {
      const f = facts[t];
      if (f?.mem?.write && !Number.isNaN(rev.addr[t])) out.push({ t, a: rev.addr[t], size: f.mem.size });
      const blk = rev.block(t);
      if (blk !== null) out.push({ t, a: blk.dst, size: blk.n });
    }
    return out;
  }

  // The faulting operand.
  const crashT = n - 1;
  const cf = facts[crashT];
  let fault: FaultSpec = { regs: [], mem: null, what: 'unknown' };
  let faultAddress: number | null = null;
  /** The fault address as the report writes it (exact where the number rounds). */
  let faultText: string | null = null;
  // Where the crashing instruction touched the stack's end (a push or call writes below rsp).
  const rsp = Number(core.reg('rsp'));
  let stackEnd = false;
  // A signal the program sent itself: the last traced instruction is the system call.
  const sent = crashT > 0 && facts[crashT - 1]?.mnemonic === Mnemonic.Syscall ? SIGNAL_SYSCALLS.get(Number(rev.reg(crashT - 1, RAX) ?? -1n)) ?? null : null;
  if (cf !== null) {
    // The address the memory operand faulted on: the kernel's (NT_SIGINFO) when the core has it.
    const memAddress = cf.mem === null ? NaN : core.siginfo && !Number.isNaN(core.siginfo.addr) ? core.siginfo.addr : rev.addr[crashT];
    const access = cf.mem !== null ? memAddress : cf.stack === 'push' ? rsp - 8 : NaN;
    // A guard page is mapped without access (ELF p_flags: PF_W 2, PF_R 4).
    const seg = Number.isNaN(access) ? null : core.segmentAt(access);
    const accessible = seg !== null && (seg.flags & (cf.mem?.write === false ? 4 : 2)) !== 0;
    if (!badTarget && !Number.isNaN(access) && isStackEnd(access, rsp, accessible)) {
      stackEnd = true;
      faultAddress = access;
      fault = { regs: [], mem: null, what: `${cf.mem?.write === false ? 'reads' : 'writes'} ${hex(access)} (${seg === null ? 'unmapped' : 'a guard page'}), at the end of the stack (rsp ${hex(rsp)})` };
    } else if (badTarget) {
      faultAddress = rip;
      if (cf.isRet) {
        fault = { regs: [], mem: Number.isNaN(rev.stackAddr[crashT]) ? null : { addr: rev.stackAddr[crashT], size: 8, value: BigInt(rip) }, what: `returns to ${hex(rip)}, outside every image` };
        // The last instruction that set rsp from another register decides which slot ret read.
        for (let u = crashT - 1; u >= 0 && u >= crashT - 64; u--) {
          const g = facts[u];
          if (g === null || !g.regsWritten.includes(RSP)) continue;
          if (g.mnemonic === Mnemonic.Leave) fault.slotAddressFrom = { t: u, regs: [5] };
          else if (g.mnemonic === Mnemonic.Mov && g.ops[1]?.kind === 'reg') fault.slotAddressFrom = { t: u, regs: [g.ops[1].ref.reg] };
          else if (g.stack !== null || g.mnemonic === Mnemonic.Add || g.mnemonic === Mnemonic.Sub) continue;
          break;
        }
      }
      else if (cf.ops[0]?.kind === 'reg') fault = { regs: [cf.ops[0].ref.reg], mem: null, what: `${cf.isCall ? 'calls' : 'jumps to'} ${hex(rip)}, outside every image` };
      else if (cf.mem !== null && !Number.isNaN(rev.addr[crashT])) fault = { regs: [], mem: { addr: rev.addr[crashT], size: 8, value: BigInt(rip) }, what: `${cf.isCall ? 'calls' : 'jumps to'} ${hex(rip)} loaded from memory` };
    } else if ((cf.mnemonic === Mnemonic.Div || cf.mnemonic === Mnemonic.Idiv) && signal === 'SIGFPE') {
      // A divide error (#DE): the divisor is zero, or the quotient does not fit. Follow the divisor.
      const op = cf.ops[0];
      if (op?.kind === 'reg' && op.ref.reg >= 0 && op.ref.reg < GPR_COUNT) {
        const v = rev.reg(crashT, op.ref.reg);
        fault = { regs: [op.ref.reg], mem: null, what: divideWhat(cf.text, v === null ? null : (v >> BigInt(op.ref.shift * 8)), op.ref.size) };
      } else if (cf.mem !== null && !Number.isNaN(rev.addr[crashT])) {
        fault = { regs: [], mem: { addr: rev.addr[crashT], size: cf.mem.size }, what: divideWhat(cf.text, null, cf.mem.size) };
      } else fault = { regs: [], mem: null, what: divideWhat(cf.text, null, 8) };
    } else if (cf.mem !== null) {
      faultAddress = Number.isNaN(memAddress) ? null : memAddress;
      const regs = [cf.mem.base, cf.mem.index].filter((r) => r >= 0 && r < GPR_COUNT && r !== RSP);
      const mapped = faultAddress !== null && core.isMapped(faultAddress);
      // The text gives the exact address: past 2^53 (a non-canonical pointer made of text, say) a number rounds.
      const exact = faultAddress === null || Number.isSafeInteger(faultAddress) ? null : rev.exactAddress(crashT, cf.mem);
      faultText = exact !== null ? `0x${BigInt.asUintN(64, exact).toString(16)}` : faultAddress === null ? null : hex(faultAddress);
      fault = { regs, mem: null, what: `${cf.mem.write ? 'writes' : 'reads'} ${faultText ?? 'an unknown address'}${faultAddress !== null && !mapped ? ' (unmapped)' : ''}` };
    } else if (sent === null) {
      fault = { regs: [], mem: null, what: `faults at ${cf.text} (not a memory access this analysis follows)` };
      notes.push('the faulting instruction has no memory operand or bad branch target to follow');
    }
  }
  if (sent !== null && !stackEnd && !badTarget && fault.regs.length === 0 && fault.mem === null) {
    fault = { regs: [], mem: null, what: `receives ${signal ?? 'a signal'} right after its own ${sent} system call` };
  }

  // __stack_chk_fail: the canary it found changed is the bad value; the store that overwrote it is the root cause.
  const checkCall = crashT > 0 ? callerOf[crashT] : -1;
  const liveCanary = checkCall >= 0 ? liveCanaryBefore(checkCall) : null;
  const canaryCheck = signal === 'SIGABRT' && liveCanary !== null && /^__stack_chk_fail/.test(calledName(checkCall) ?? '');
  if (canaryCheck) fault = { regs: [], mem: { addr: liveCanary, size: 8 }, what: `the stack protector found the canary at ${hex(liveCanary)} changed, and aborted` };

  const place = (t: number): ReportPlace => ({ ip: hex(ips[t]), instruction: facts[t]?.text ?? '(undecodable)', location: locs.locate(ips[t]) });
  /** The chain step of window index t (its distance counted to the crash). */
  const stepAt = (t: number, kind: StepKind, what: string): ChainStep => ({ ...place(t), kind, what, distance: crashT - t });
  /** A root cause at t whose chain goes straight to the crash; in library code, with the program's call that ran it. */
  const directCause = (t: number, kind: StepKind, what: string): RootCause => {
    const step = stepAt(t, kind, what);
    const c = callerOf[t];
    return { ...step, rank: 1, callSite: c >= 0 ? place(c) : null, chain: [step, stepAt(crashT, 'crash', fault.what)] };
  };
  const crash = { ...place(crashT), what: fault.what, faultAddress: faultText ?? (faultAddress === null ? null : hex(faultAddress)) };

  let rootCauses: RootCause[] = [];
  let aliasing: CrashReport['aliasing'] = { byValue: 0, byHeapLayout: 0, assumed: 0 };
  let confidence: CrashReport['confidence'] = 'none';
  if (!matches) {
    notes.push('the core does not match the trace: no root cause is named');
  } else if (stackEnd) {
    rootCauses = stackCauses();
    if (rootCauses.length > 0) confidence = 'established';
    else notes.push(`the stack ran out, but neither a recursion (a call site open ${MIN_RECURSION} times or more) nor a large stack allocation in the last frame is in the window`);
  } else if (sent !== null && fault.regs.length === 0 && fault.mem === null && !(signal === 'SIGABRT' && callerOf[crashT - 1] >= 0)) {
    // The program's own transfer into the library that made the system call (a call of kill or
    // raise, or a tail jump to it, past the PLT's stub, which has no symbol), else its call site.
    let at = callerOf[crashT - 1] >= 0 ? callerOf[crashT - 1] : crashT - 1;
    for (let u = crashT - 2; u >= 0 && u > at; u--) {
      if (!locs.isMain(ips[u]) || locs.functionContaining(ips[u]) === null) continue;
      const f = facts[u];
      if (f !== null && (f.isCall || f.mnemonic === Mnemonic.Jmp)) at = u;
      break;
    }
    rootCauses = [directCause(at, 'signal-sent', `the program sends the signal itself (${sent} system call): not a fault`)];
    confidence = 'established';
  } else if (fault.regs.length === 0 && fault.mem === null && signal === 'SIGABRT' && callerOf[crashT] >= 0) {
    rootCauses = abortCauses(callerOf[crashT]);
    confidence = 'conditional';
    notes.push('the program aborted inside a library call: the root cause named is that call and what it was given (the library\'s own check is not followed)');
  } else if (fault.regs.length === 0 && fault.mem === null) {
    notes.push('the faulting operand could not be determined');
  } else {
    const result = backwardTaint(
      {
        facts, rev, from: 0, callerOf, chunks, controlSlots, libraryCalls, isCode: (a) => locs.moduleAt(a) !== null, badTarget, dataObjectAt: (a) => locs.dataObjectAt(a),
        isMapped: (a) => core.isMapped(a), initialStack: initialStack(), inputCall: (c) => {
          const name = calledName(c);
          return name !== null && readsInput(name) ? name : null;
        },
      },
      fault,
    );
    aliasing = result.aliasing;
    for (const nt of result.notes.sort((x, y) => y.t - x.t)) notes.push(`at ${hex(ips[nt.t])} (${crashT - nt.t} instructions before the crash): ${nt.text}`);
    const stepOut = (i: number): ChainStep => {
      const s = result.steps[i];
      return { ...place(s.t), kind: s.kind, what: s.what, distance: crashT - s.t };
    };
    rootCauses = result.rootCauses.map((i, k) => {
      const s = result.steps[i];
      const chain: ChainStep[] = [];
      for (let j = i; j >= 0; j = result.steps[j].next) {
        chain.push(stepOut(j));
        if (result.steps[j].next === j) break;
      }
      const c = callerOf[s.t];
      return { ...stepOut(i), rank: k + 1, callSite: c >= 0 ? place(c) : null, chain };
    });
    if (rootCauses.length > 0) confidence = result.notes.length === 0 && aliasing.assumed === 0 ? 'established' : 'conditional';
    else if (canaryCheck) {
      rootCauses = abortCauses(callerOf[crashT]);
      confidence = 'conditional';
      notes.push('no store over the stack-protector canary was found in the window: the root cause named is the function whose check failed');
    } else notes.push(`the taint reached the start of the analysed window (${n} instructions) without an origin`);
  }

  /**
   * The stack segment above rsp at the window's start, when the window
   * holds every instruction the stream traced (from the program's first):
   * there, only the kernel wrote it (argv, the environment, the auxiliary
   * vector). A window cut from a longer run starts with the callers' frames
   * above it, written before it by the program itself: null.
   */
  function initialStack(): TaintContext['initialStack'] {
    if (win.contiguousFrom !== 0 || win.ips.length !== win.total) return null;
    const sp = rev.reg(0, RSP);
    const seg = sp === null ? null : core.segmentAt(Number(sp));
    return sp === null || seg === null ? null : { start: Number(sp), end: seg.vaddr + seg.memsz };
  }

  /** The stack ran out: the recursion open at the crash, else the largest single stack allocation. */
  function stackCauses(): RootCause[] {
    const rec = recursionAtCrash(callStack, (c) => ips[c]);
    if (rec !== null) {
      // Where each call went: the next instruction, or for the crashing call itself (its push faulted) its direct target.
      const callee = (c: number): number | null => {
        if (c + 1 < n) return ips[c + 1];
        const op = facts[c]?.ops[0];
        return op?.kind === 'branch' ? op.target : null;
      };
      const names = rec.cycle.map((c) => {
        const to = callee(c);
        return to === null ? 'an indirect call' : (locs.functionAt(to) ?? hex(to));
      });
      const cycle = names.length === 1 ? `${names[0]} calls itself` : `the calls ${names.join(' → ')} recurse`;
      return [directCause(rec.site, 'stack-exhaustion', `${cycle} here: this call was open ${rec.openings} times when the stack ran out (${callStack.length} calls open in the window): a recursion that does not end`)];
    }
    // The innermost frame: from the last call still open (the whole window if none is).
    const from = callStack.length > 0 ? callStack[callStack.length - 1] + 1 : 0;
    const big = frameAllocation(from, n, (t) => facts[t]?.regsWritten.includes(RSP) === true, (t) => rev.reg(t, RSP));
    if (big === null) return [];
    const fn = locs.functionContaining(ips[big.t]);
    return [directCause(big.t, 'stack-exhaustion', `allocates on the stack: ${fn === null ? 'the frame' : `the frame of ${fn}`} took ${big.bytes} bytes, more than the stack had left`)];
  }

  /**
   * abort() from inside a library call (glibc's allocator checks, assert,
   * __stack_chk_fail): the program's call that led there is the first root
   * cause; for the allocator, an object passed to it that was freed
   * earlier in the window names that free as the second.
   */
  function abortCauses(c: number): RootCause[] {
    const name = calledName(c);
    const crashStep = stepAt(crashT, 'crash', fault.what);
    const step = stepAt(c, 'abort', `the library aborted inside this call${name === null ? '' : ` of ${name}`}: its check failed on what the program passed`);
    const out: RootCause[] = [{ ...step, rank: 1, callSite: null, chain: [step, crashStep] }];
    // A heap object overrun before the call: the allocator's check that failed is likely on its next chunk.
    const over = firstHeapOverflow(programHeapWrites(), chunks, c);
    if (over !== null) {
      const w = over.write;
      const what = `${w.label} writes ${w.n} bytes to [${hex(w.dst)}, ${hex(w.dst + w.n)}): ${over.past} bytes past the end of the heap object at ${hex(over.chunk.start)} (${over.chunk.end - over.chunk.start} bytes), over the next chunk's header: a heap overflow that the allocator found later`;
      const overStep = stepAt(w.t, 'out-of-bounds', what);
      const site = callerOf[w.t];
      out.unshift({ ...overStep, rank: 1, callSite: site >= 0 ? place(site) : null, chain: [overStep, step, crashStep] });
      out[1].rank = 2;
    }
    const p = rev.reg(c, RDI);
    const freed = p === null ? undefined : chunks.find((x) => x.start === Number(p) && x.freedAt >= 0 && x.freedAt < c);
    if (freed !== undefined) {
      const earlier = stepAt(freed.freedAt, 'abort', `freed the object at ${hex(freed.start)} before the call that aborted was given it again`);
      out.push({ ...earlier, rank: out.length + 1, callSite: null, chain: [earlier, step, crashStep] });
    }
    return out;
  }

  /** The program's writes: its own stores (through a recovered base register) and its summarised library calls. */
  function programHeapWrites(): HeapWrite[] {
    const out: HeapWrite[] = libraryCalls.map((lc) => ({ t: lc.call, pointer: lc.dst, dst: lc.dst, n: lc.n, label: lc.routine }));
    for (let t = 0; t < n; t++) {
      const f = facts[t];
      if (f === null || f.mem === null || !f.mem.write || !locs.isMain(ips[t]) || Number.isNaN(rev.addr[t]) || f.mem.base < 0 || f.mem.base >= GPR_COUNT) continue;
      const p = rev.reg(t, f.mem.base);
      if (p !== null) out.push({ t, pointer: Number(p), dst: rev.addr[t], n: f.mem.size, label: `the store ${f.text}` });
    }
    return out;
  }

  let knownRegs = 0;
  for (let t = 0; t < n; t++) for (let r = 0; r < GPR_COUNT; r++) if (rev.reg(t, r) !== null) knownRegs++;
  let accesses = 0;
  let resolved = 0;
  for (let t = 0; t < n; t++) {
    if (facts[t]?.mem && facts[t]!.mnemonic !== Mnemonic.Lea && (facts[t]!.mem!.read || facts[t]!.mem!.write)) {
      accesses++;
      if (!Number.isNaN(rev.addr[t])) resolved++;
    }
  }
  return {
    bundle,
    program: programPath ?? '?',
    signal,
    crash,
    core: { path: corePath, source, matchesTrace: matches, checks },
    window: { instructions: n, traced: win.total, lastGap: win.lastGap === null ? null : GAP_NAMES[win.lastGap.kind] },
    reverseExecution: {
      knownRegisterValues: n > 0 ? knownRegs / (n * GPR_COUNT) : 0,
      resolvedAddresses: resolved,
      memoryAccesses: accesses,
      conflicts: rev.conflicts,
      unresolvedStores: rev.unresolvedStores().length,
    },
    aliasing,
    summarisedCalls: libraryCalls.length,
    heapObjects: chunks.map((c) => ({ start: hex(c.start), size: c.end - c.start, freed: c.freedAt >= 0 })),
    rootCauses,
    confidence,
    notes: [...new Set(notes)],
  };
}

/**
 * The stream of the thread the core is of (its NT_PRSTATUS pid is the
 * crashing thread's id in the recording's namespace): the last one of that
 * thread, since an exec starts a new stream. Else the recording's first.
 */
function crashedStream(recording: Recording, tid: number): TraceStream {
  const mine = recording.streams.filter((s) => s.tid === tid && s.size > 0);
  return mine.length > 0 ? mine[mine.length - 1] : primaryStream(recording);
}

/** The x86-64 system calls that send a signal (arch/x86/entry/syscalls/syscall_64.tbl). */
const SIGNAL_SYSCALLS = new Map<number, string>([
  [62, 'kill'],
  [200, 'tkill'],
  [234, 'tgkill'],
  [129, 'rt_sigqueueinfo'],
  [297, 'rt_tgsigqueueinfo'],
]);

/** What a divide error did: the divisor's value when known (SDM Vol. 2, DIV/IDIV: #DE on a zero divisor or a quotient too large). */
function divideWhat(text: string, divisor: bigint | null, size: number): string {
  if (divisor === null) return `divide error at ${text}: a zero divisor or a quotient too large`;
  const bits = BigInt(size * 8);
  const v = BigInt.asUintN(Number(bits), divisor);
  if (v === 0n) return `divides by zero (${text})`;
  return `divide error at ${text}: the divisor is ${v === (1n << bits) - 1n ? '-1 and the quotient overflows' : hex(Number(v)) + ' and the quotient is too large'}`;
}

function mul(a: bigint | null, b: bigint | null): bigint | null {
  return a === null || b === null ? null : a * b;
}
