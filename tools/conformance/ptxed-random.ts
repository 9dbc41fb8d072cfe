/**
 * Random programs and traces over them, for the ptxed differential
 * (test/ptxed-differential.test.ts, tools/conformance/ptxed-differential.ts):
 * what libipt's .ptt tests do by hand, drawn at random, so that packets and
 * events meet in orders no vector was written for.
 *
 * The code is made of functions built from a few instruction templates
 * whose bytes are written here (encoded, never decoded: the decoders under
 * test read them with their own x86 decoders). A walk over that code writes
 * the trace the way the processor would (SDM Vol. 3C, 33.4.2 and 33.3.7):
 * a TNT bit per conditional branch (and per compressed return), a TIP per
 * indirect branch or far transfer, FUP plus TIP.PGD/TIP.PGE where tracing
 * stops and resumes, and between instructions the events a PT trace can
 * carry: PSB+, overflows, interrupts (FUP, TIP), TSX begin, commit and
 * abort, PTWRITE, power events, VMCS, PIP, event-trace CFE/EVD, TRIG and
 * timing packets. Some events are put where they do not belong, on purpose:
 * the decoders must fail on those the same way.
 */
import { Packet } from '../../src/packets/packet.js';
import { CfeType, EvdType, IpCompression, PacketType } from '../../src/packets/packet-type.js';
import { encodeTrace } from '../../src/packets/trace-writer.js';
import { randomPayload, Rng } from '../../bench/synthetic-trace.js';

/** What an instruction of the random code does (its template). */
export const enum Op {
  Other,
  Cond,
  Jump,
  Call,
  Ret,
  IndJump,
  IndCall,
  Ptwrite,
  Far,
  MovCr3,
  VmEntry,
}

export interface Insn {
  op: Op;
  ip: number;
  size: number;
  /** A direct branch's target (an instruction's address). */
  target: number;
}

export interface RandomProgram {
  base: number;
  code: Uint8Array;
  insns: Insn[];
  /** Index in {@link insns} by address. */
  at: Map<number, number>;
  /** The first instruction of each function. */
  entries: number[];
}

/** Bytes of a non-branch template (64-bit code). */
const OTHERS: readonly (readonly number[])[] = [
  [0x90], // nop
  [0x48, 0x89, 0xc0], // mov rax, rax
  [0x0f, 0x1f, 0x40, 0x00], // nop dword [rax+0]
  [0x31, 0xc0], // xor eax, eax
];

/** Size of each template (branches with rel32 displacements, patched once laid out). */
function sizeOf(op: Op, other: number): number {
  switch (op) {
    case Op.Other: return OTHERS[other]!.length;
    case Op.Cond: return 6; // 0f 84 rel32
    case Op.Jump: return 5; // e9 rel32
    case Op.Call: return 5; // e8 rel32
    case Op.Ret: return 1; // c3
    case Op.IndJump: return 2; // ff e0: jmp rax
    case Op.IndCall: return 2; // ff d0: call rax
    case Op.Ptwrite: return 4; // f3 0f ae e0: ptwrite eax
    case Op.Far: return 2; // 0f 05: syscall
    case Op.MovCr3: return 3; // 0f 22 d8: mov cr3, rax
    case Op.VmEntry: return 3; // 0f 01 c3: vmresume
  }
}

/** A random program of `functions` functions at `base`. */
export function randomProgram(rng: Rng, base = 0x1000, functions = 6): RandomProgram {
  const insns: Insn[] = [];
  const others: number[] = [];
  const entries: number[] = [];
  const bodies: number[][] = [];
  let ip = base;
  for (let f = 0; f < functions; f++) {
    entries.push(insns.length);
    const body: number[] = [];
    const n = 4 + rng.int(14);
    for (let i = 0; i < n; i++) {
      const r = rng.int(100);
      const op = i === n - 1 ? (rng.chance(0.85) ? Op.Ret : Op.IndJump)
        : r < 40 ? Op.Other : r < 60 ? Op.Cond : r < 66 ? Op.Jump : r < 74 ? Op.Call : r < 77 ? Op.Ret
        : r < 81 ? Op.IndJump : r < 85 ? Op.IndCall : r < 89 ? Op.Ptwrite : r < 93 ? Op.Far : r < 96 ? Op.MovCr3 : Op.VmEntry;
      const other = rng.int(OTHERS.length);
      const size = sizeOf(op, other);
      body.push(insns.length);
      insns.push({ op, ip, size, target: 0 });
      others.push(other);
      ip += size;
    }
    bodies.push(body);
  }
  // Direct targets: conditional branches anywhere, mostly in their own
  // function (loops and skips). Jumps and calls only forward, to a later
  // instruction or function: code that needs no trace never loops (ptxed
  // would print such a loop for ever; ptscope stops it).
  for (let f = 0; f < functions; f++) {
    for (const k of bodies[f]!) {
      const insn = insns[k]!;
      if (insn.op === Op.Cond) {
        insn.target = insns[rng.pick(rng.chance(0.9) ? bodies[f]! : bodies[rng.int(functions)]!)]!.ip;
      } else if (insn.op === Op.Jump) {
        insn.target = insns[k + 1 + rng.int(Math.min(8, insns.length - k - 1))]?.ip ?? 0;
      } else if (insn.op === Op.Call) {
        const later = entries.filter((e) => e > k);
        insn.target = later.length > 0 ? insns[rng.pick(later)]!.ip : 0;
      }
      // Nothing to go to: past the code's end (the walk disables tracing there).
      if ((insn.op === Op.Jump || insn.op === Op.Call) && insn.target === 0) insn.target = ip;
    }
  }
  const code = new Uint8Array(ip - base);
  const at = new Map<number, number>();
  insns.forEach((insn, k) => {
    at.set(insn.ip, k);
    const o = insn.ip - base;
    const rel = insn.target - (insn.ip + insn.size);
    const rel32 = (p: number): void => {
      code[p] = rel & 0xff;
      code[p + 1] = (rel >>> 8) & 0xff;
      code[p + 2] = (rel >>> 16) & 0xff;
      code[p + 3] = (rel >>> 24) & 0xff;
    };
    switch (insn.op) {
      case Op.Other: code.set(OTHERS[others[k]!]!, o); break;
      case Op.Cond: code.set([0x0f, 0x84], o); rel32(o + 2); break;
      case Op.Jump: code[o] = 0xe9; rel32(o + 1); break;
      case Op.Call: code[o] = 0xe8; rel32(o + 1); break;
      case Op.Ret: code[o] = 0xc3; break;
      case Op.IndJump: code.set([0xff, 0xe0], o); break;
      case Op.IndCall: code.set([0xff, 0xd0], o); break;
      case Op.Ptwrite: code.set([0xf3, 0x0f, 0xae, 0xe0], o); break;
      case Op.Far: code.set([0x0f, 0x05], o); break;
      case Op.MovCr3: code.set([0x0f, 0x22, 0xd8], o); break;
      case Op.VmEntry: code.set([0x0f, 0x01, 0xc3], o); break;
    }
  });
  return { base, code, insns, at, entries };
}

/**
 * The packets of a walk of `steps` instructions over `program`, starting
 * at a random function with a PSB+; `eventRate`: the chance, per
 * instruction, of an event before it (anything but the control flow
 * itself; 0 gives a plain trace).
 */
export function randomWalk(rng: Rng, program: RandomProgram, steps: number, eventRate = 0.08): Packet[] {
  const out: Packet[] = [];
  const { insns } = program;
  const stack: number[] = [];
  let tntBits = 0;
  let tntSize = 0;
  let lastIp = 0;
  let enabled = true;
  let k = program.entries[rng.int(program.entries.length)]!;

  const push = (type: PacketType, fields: Partial<Packet> = {}): Packet => {
    const p = Object.assign(new Packet(), { type }, fields);
    out.push(p);
    return p;
  };
  /** Pending TNT bits go out before any other packet, in order. */
  const flushTnt = (): void => {
    if (tntSize === 0) return;
    push(tntSize > 6 || rng.chance(0.1) ? PacketType.Tnt64 : PacketType.Tnt8, { tntSize, tntBits });
    tntSize = 0;
    tntBits = 0;
  };
  const addTnt = (taken: boolean): void => {
    tntBits = tntBits * 2 + (taken ? 1 : 0);
    tntSize++;
    if (tntSize === 6 && rng.chance(0.6)) flushTnt();
    else if (tntSize === 47) flushTnt();
  };
  /** An IP packet with a compression the last IP allows (or, rarely, one it does not). */
  const ipPacket = (type: PacketType, ip: number, suppress = false): void => {
    flushTnt();
    if (suppress) {
      push(type, { ipc: IpCompression.Suppressed });
      return;
    }
    const hi = Math.floor(ip / 2 ** 32);
    const lo = ip >>> 0;
    const sameHi48 = Math.floor(lastIp / 2 ** 16) === Math.floor(ip / 2 ** 16);
    const sameHi32 = Math.floor(lastIp / 2 ** 32) === hi;
    const choices: IpCompression[] = [IpCompression.Full, IpCompression.Sext48];
    if (sameHi48) choices.push(IpCompression.Update16);
    if (sameHi32) choices.push(IpCompression.Update32);
    choices.push(IpCompression.Update48);
    let ipc = rng.pick(choices);
    if (rng.chance(0.01)) ipc = rng.pick([IpCompression.Update16, IpCompression.Update32]);
    const p = push(type, { ipc });
    switch (ipc) {
      case IpCompression.Update16: p.lo = lo & 0xffff; break;
      case IpCompression.Update32: p.lo = lo; break;
      case IpCompression.Sext48:
      case IpCompression.Update48: p.lo = lo; p.hi = hi & 0xffff; break;
      default: p.lo = lo; p.hi = hi; break;
    }
    lastIp = ip;
  };
  /** A call's return address, for a compressed return later (the last 64). */
  const pushReturn = (ip: number): void => {
    stack.push(ip);
    if (stack.length > 64) stack.shift();
  };
  /** A branch that needs trace: a TIP to `to`, or (1 - `pTip`) a TIP.PGD there. */
  const branchTo = (to: number, pTip: number, pSuppressed = 0): void => {
    const pgd = !rng.chance(pTip);
    ipPacket(pgd ? PacketType.TipPgd : PacketType.Tip, to, pSuppressed > 0 && rng.chance(pSuppressed));
    if (pgd) enabled = false;
  };
  const anyIp = (): number => insns[rng.int(insns.length)]!.ip;
  const entryIp = (): number => insns[program.entries[rng.int(program.entries.length)]!]!.ip;
  const randomOf = (type: PacketType): void => {
    flushTnt();
    randomPayload(rng, push(type), type);
  };
  const psbPlus = (ip: number): void => {
    flushTnt();
    push(PacketType.Psb);
    lastIp = 0;
    if (rng.chance(0.6)) randomOf(PacketType.Tsc);
    if (rng.chance(0.4)) randomOf(PacketType.Tma);
    if (rng.chance(0.5)) randomOf(PacketType.Cbr);
    push(PacketType.ModeExec, { csl: true, csd: false, iflag: rng.chance(0.5) });
    if (rng.chance(0.3)) randomOf(PacketType.Pip);
    if (rng.chance(0.2)) randomOf(PacketType.Vmcs);
    if (rng.chance(0.2)) push(PacketType.ModeTsx, { intx: rng.chance(0.5), abrt: false });
    if (enabled || rng.chance(0.05)) ipPacket(PacketType.Fup, ip);
    push(PacketType.PsbEnd);
  };

  psbPlus(insns[k]!.ip);
  for (let step = 0; step < steps; step++) {
    const insn = insns[k]!;
    if (!enabled) {
      // Tracing resumes somewhere (TIP.PGE), sometimes after timing or a PSB+.
      if (rng.chance(0.2)) randomOf(rng.pick([PacketType.Tsc, PacketType.Mtc, PacketType.Cyc, PacketType.Cbr]));
      if (rng.chance(0.1)) psbPlus(insn.ip);
      k = program.at.get(rng.chance(0.7) ? insn.ip : anyIp())!;
      ipPacket(PacketType.TipPge, insns[k]!.ip);
      enabled = true;
      continue;
    }
    // Events between instructions.
    if (rng.chance(eventRate)) {
      const r = rng.int(100);
      if (r < 10) {
        psbPlus(insn.ip);
      } else if (r < 20) {
        // Asynchronous disable: FUP at the next instruction, TIP.PGD.
        ipPacket(PacketType.Fup, insn.ip);
        ipPacket(PacketType.TipPgd, insn.ip, rng.chance(0.5));
        enabled = false;
        continue;
      } else if (r < 28) {
        // An interrupt: FUP where it hit, TIP to the handler.
        ipPacket(PacketType.Fup, insn.ip);
        if (rng.chance(0.2)) randomOf(rng.pick([PacketType.Pip, PacketType.Vmcs, PacketType.ModeExec]));
        const to = entryIp();
        ipPacket(PacketType.Tip, to);
        k = program.at.get(to)!;
        continue;
      } else if (r < 36) {
        // TSX: begin or commit (MODE.TSX, FUP) or an abort (MODE.TSX, FUP, TIP).
        flushTnt();
        const abort = rng.chance(0.3);
        push(PacketType.ModeTsx, { intx: !abort && rng.chance(0.5), abrt: abort });
        ipPacket(PacketType.Fup, insn.ip);
        if (abort) {
          const to = anyIp();
          ipPacket(PacketType.Tip, to);
          k = program.at.get(to)!;
          continue;
        }
      } else if (r < 44) {
        // An overflow, and where tracing went on (FUP), or a disable.
        flushTnt();
        push(PacketType.Ovf);
        if (rng.chance(0.7)) {
          const to = rng.chance(0.5) ? insn.ip : anyIp();
          ipPacket(PacketType.Fup, to);
          k = program.at.get(to)!;
        } else {
          enabled = false;
        }
        continue;
      } else if (r < 56) {
        // Power: MWAIT and PWRE with a FUP, EXSTOP (with a FUP if IP is set), PWRX.
        flushTnt();
        const kind = rng.int(4);
        if (kind === 0) {
          randomOf(PacketType.Mwait);
          randomOf(PacketType.Pwre);
          ipPacket(PacketType.Fup, insn.ip);
        } else if (kind === 1) {
          const p = push(PacketType.Exstop, { ip: rng.chance(0.7) });
          if (p.ip) ipPacket(PacketType.Fup, insn.ip);
        } else if (kind === 2) {
          randomOf(PacketType.Pwrx);
        } else {
          randomOf(PacketType.Pwre);
        }
      } else if (r < 70) {
        // Timing.
        randomOf(rng.pick([PacketType.Tsc, PacketType.Mtc, PacketType.Cyc, PacketType.Tma, PacketType.Cbr, PacketType.Mtc, PacketType.Cyc]));
      } else if (r < 74) {
        // Event trace, random: a CFE of any type with or without its FUP, EVDs before it.
        flushTnt();
        if (rng.chance(0.3)) randomOf(PacketType.Evd);
        const p = push(PacketType.Cfe);
        randomPayload(rng, p, PacketType.Cfe);
        if (p.ip) ipPacket(PacketType.Fup, insn.ip);
      } else if (r < 80) {
        // Event trace as the processor writes it (SDM Vol. 3C, 33.4.2.8):
        // the event's data (EVD), CFE, a FUP where it happened, then where
        // the flow went (TIP) or that tracing stopped (TIP.PGD).
        flushTnt();
        const type = rng.pick([CfeType.Intr, CfeType.Iret, CfeType.Smi, CfeType.Init, CfeType.VmEntry, CfeType.VmExit, CfeType.Shutdown, CfeType.Uintr, CfeType.Uiret, CfeType.SwIntr, CfeType.Syscall, CfeType.Rsm, CfeType.Sipi, CfeType.VmExitIntr]);
        if (type === CfeType.VmExit) {
          push(PacketType.Evd, { evdType: EvdType.VmxReason, lo: rng.bits(16), hi: 0 });
          if (rng.chance(0.5)) push(PacketType.Evd, { evdType: EvdType.VmxQualification, lo: rng.u32(), hi: rng.u32() });
        }
        if (type === CfeType.Intr && rng.chance(0.3)) push(PacketType.Evd, { evdType: EvdType.Cr2, lo: rng.u32(), hi: 0 });
        const withIp = type !== CfeType.Rsm && type !== CfeType.Sipi && type !== CfeType.VmExitIntr ? rng.chance(0.9) : rng.chance(0.1);
        push(PacketType.Cfe, { cfeType: type, vector: rng.bits(8), ip: withIp });
        if (withIp) ipPacket(PacketType.Fup, insn.ip);
        if (type === CfeType.Sipi || type === CfeType.VmExitIntr || rng.chance(0.1)) {
          // Nothing more: the flow goes on (or the next packet decides).
        } else if (type === CfeType.Smi || type === CfeType.Shutdown || type === CfeType.VmExit || rng.chance(0.15)) {
          ipPacket(PacketType.TipPgd, anyIp(), rng.chance(0.5));
          enabled = false;
          continue;
        } else {
          const to = rng.chance(0.7) ? entryIp() : anyIp();
          ipPacket(PacketType.Tip, to);
          k = program.at.get(to)!;
          continue;
        }
      } else if (r < 84) {
        randomOf(PacketType.Trig);
        const last = out[out.length - 1]!;
        if (last.ip) ipPacket(PacketType.Fup, insn.ip);
      } else if (r < 90) {
        // Paging or VMCS without a binding instruction, or a stray packet.
        randomOf(rng.pick([PacketType.Pip, PacketType.Vmcs, PacketType.ModeExec, PacketType.Stop, PacketType.Pad, PacketType.Ptw]));
      } else if (r < 95) {
        // A packet where the flow does not expect it.
        ipPacket(rng.pick([PacketType.Fup, PacketType.Tip, PacketType.TipPge, PacketType.TipPgd]), anyIp(), rng.chance(0.2));
      } else {
        // Padding.
        flushTnt();
        push(PacketType.Pad);
      }
    }
    // The instruction itself.
    let next = insn.ip + insn.size;
    switch (insn.op) {
      case Op.Other:
        break;
      case Op.Ptwrite:
        if (rng.chance(0.9)) {
          flushTnt();
          const p = push(PacketType.Ptw);
          randomPayload(rng, p, PacketType.Ptw);
          if (p.ip) ipPacket(PacketType.Fup, insn.ip);
        }
        break;
      case Op.MovCr3:
        if (rng.chance(0.8)) randomOf(PacketType.Pip);
        break;
      case Op.VmEntry:
        if (rng.chance(0.6)) randomOf(PacketType.Vmcs);
        next = anyIp();
        branchTo(next, 0.8);
        break;
      case Op.Cond: {
        const taken = rng.chance(0.5);
        addTnt(taken);
        if (taken) next = insn.target;
        break;
      }
      case Op.Jump:
        next = insn.target;
        break;
      case Op.Call:
        pushReturn(next);
        next = insn.target;
        break;
      case Op.Ret:
        if (stack.length > 0 && rng.chance(0.6)) {
          addTnt(true);
          next = stack.pop()!;
        } else {
          next = stack.length > 0 && rng.chance(0.7) ? stack.pop()! : anyIp();
          ipPacket(PacketType.Tip, next, rng.chance(0.03));
        }
        break;
      case Op.IndCall:
        pushReturn(next);
        next = rng.chance(0.8) ? entryIp() : anyIp();
        branchTo(next, 0.95);
        break;
      case Op.IndJump:
      case Op.Far:
        next = anyIp();
        branchTo(next, 0.92, 0.02);
        break;
    }
    const nk = program.at.get(next);
    // Past the end of the code: tracing leaves it (TIP.PGD) and comes back.
    if (nk === undefined) {
      ipPacket(PacketType.TipPgd, 0, true);
      enabled = false;
      continue;
    }
    k = nk;
  }
  flushTnt();
  if (rng.chance(0.5)) ipPacket(PacketType.TipPgd, 0, true);
  return out;
}

/** A random program and a trace of it (`eventRate`: see {@link randomWalk}). */
export function randomCase(seed: number, steps = 200, eventRate = 0.08): { program: RandomProgram; trace: Uint8Array } {
  const rng = new Rng(seed);
  const program = randomProgram(rng);
  return { program, trace: encodeTrace(randomWalk(rng, program, steps, eventRate)) };
}
