/**
 * The edge decoder's fast path: walks the {@link BlockGraph} with the TNT
 * bits and tokens of a {@link TraceScanner}, crossing up to sixteen
 * conditional branches per {@link StepCache} lookup, and counts each block
 * entry as an AFL edge — without decoding or materialising instructions.
 *
 * It reproduces libipt's instruction flow decoder (src/flow/insn-decoder.ts)
 * for what it handles, rule by rule:
 * - conditional branches take TNT bits; returns take a taken bit (popping
 *   the return stack: compressed) or, with no bit left, a TIP; indirect and
 *   far branches take a TIP, also while bits of the TNT packet right before
 *   it remain (deferred TIPs); direct jumps and calls follow the code;
 * - an event is due only once the bits before it are used up, and binds
 *   where the flow decoder binds it: a TIP.PGD at the next branch that can
 *   cause it (libipt's pt_insn_at_disabled_event, SKL014 included; a near
 *   call it binds to still pushes its return address, as libipt's block
 *   decoder logs every call it runs), an
 *   asynchronous branch or disable at its FUP's IP, the status of a PSB+ at
 *   its FUP's IP (when it holds MODE.Exec, MODE.TSX, PIP or VMCS), an
 *   overflow, an enable and a CBR where they occur; until then the flow
 *   moves only through code that needs no trace;
 * - at the end of the trace the flow stops right after the branch that
 *   used the last bit or TIP.
 *
 * Whatever it does not reproduce — a decode error, a packet or event it
 * does not handle, code outside 64-bit mode, an instruction that can bind
 * an event (MOV CR3, PTWRITE...) while one is pending — makes it stop
 * ({@link FastEdgeWalker.run} returns false, {@link bailReason} says why)
 * before anything is reported, and the caller decodes the trace with the
 * exact decoders instead.
 *
 * Blocks and edges follow the definition in edge-coverage.ts: a block is
 * entered when its first instruction runs; the block entered before it
 * (none after the start, an overflow or an error) makes the edge.
 */
import { addrFilterCheck, AddrCfg, type DecoderConfig } from '../../packets/config.js';
import { ANY_ASID, ipToBigInt } from '../address-space.js';
import { instructionDecoderFor, type InstructionDecoder } from '../instruction-decoder.js';
import { ExecMode, InsnKind, InstructionInfo } from '../instruction.js';
import { BlockGraph, Term, isDirectTerm } from './block-graph.js';
import { CALL_STACK_DEPTH, CallStack } from './call-stack.js';
import type { EdgeCounts } from './edge-map.js';
import type { EdgePairs } from './edge-pairs.js';
import { StepCache } from './step-cache.js';
import { Tok, TraceScanner } from './trace-scanner.js';
import type { PacketStream } from '../../packets/packet-stream.js';

/**
 * Direct branches in a row without trace before the fast path gives up
 * (libipt's decoder fails after 2^24; the exact decoder then reports it).
 */
const MAX_DIRECTS_WITHOUT_TRACE = 1 << 20;

/**
 * Blocks the shared graph may hold before a decode starts it afresh (a
 * trace can send the flow to any mapped address; this bounds the memory).
 */
const MAX_GRAPH_BLOCKS = 1 << 22;

/** Counters of one or more runs. */
export interface FastStats {
  /** Cache lookups answered, and steps built. */
  hits: number;
  misses: number;
  /** TNT bits and TIPs used. */
  bits: number;
  tips: number;
}

export class FastEdgeWalker {
  readonly scanner: TraceScanner;
  readonly cache: StepCache;
  /** Why the last run gave up ('' if it did not). */
  bailReason = '';
  bits = 0;
  tips = 0;

  private readonly retstack = new CallStack();
  private readonly idec: InstructionDecoder;
  private readonly insn = new InstructionInfo();
  private readonly skl014: boolean;
  private readonly skd022: boolean;

  // Where the flow is.
  private enabled = false;
  private ip = 0;
  /** Block id at {@link ip}, or -1 until looked up. */
  private id = -1;
  private mode: ExecMode = ExecMode.Unknown;
  private directs = 0;

  // The edge state: the block entered last and whether the next
  // instruction to run starts a block.
  private curLoc = 0;
  private curAddr = NaN;
  private boundary = true;
  private counts: EdgeCounts | null = null;
  private pairs: EdgePairs | null = null;
  private mask = 0;

  constructor(
    readonly config: DecoderConfig,
    readonly graph: BlockGraph,
    mapSize: number,
    stepBits?: number,
  ) {
    this.scanner = new TraceScanner(config);
    this.cache = new StepCache(graph, mapSize - 1, stepBits);
    this.cache.beforeClear = () => this.settleUses();
    this.idec = instructionDecoderFor(graph.image);
    const filter = config.addrFilter.ranges;
    this.skl014 = config.errata.skl014 && filter.some((r) => r.cfg !== AddrCfg.Disabled);
    this.skd022 = config.errata.skd022;
  }

  /**
   * Count the edges of `trace` into `counts` (and `pairs`). True when done;
   * false when the trace needs the exact decoders — then what was counted
   * must be discarded.
   */
  run(trace: Uint8Array | PacketStream, counts: EdgeCounts, pairs: EdgePairs | null): boolean {
    this.counts = counts;
    this.pairs = pairs;
    this.mask = counts.mask;
    this.bailReason = '';
    this.enabled = false;
    this.ip = 0;
    this.id = -1;
    this.mode = ExecMode.Unknown;
    this.directs = 0;
    this.curLoc = 0;
    this.curAddr = NaN;
    this.boundary = true;
    this.retstack.reset();
    const g = this.graph;
    if (g.stale || g.size > MAX_GRAPH_BLOCKS) g.clear();
    if (this.cache.graphGeneration !== g.generation) {
      this.cache.clear();
      this.cache.graphGeneration = g.generation;
    }
    const sc = this.scanner;
    if (!sc.begin(trace)) return true;
    sc.next();
    if (sc.tok !== Tok.Psb) {
      if (sc.tok === Tok.Eos) return true;
      return this.bail(sc.tok === Tok.Bail ? sc.bailReason : 'no psb+ at the sync point');
    }
    // The first PSB+ says where tracing starts; its events bind right there.
    if (sc.mode !== ExecMode.Unknown) this.mode = sc.mode;
    if (sc.psbEnabled) {
      this.enabled = true;
      this.ip = sc.ip;
    }
    sc.next();
    const done = this.walk();
    this.settleUses();
    return done;
  }

  private bail(why: string): false {
    this.bailReason = why;
    return false;
  }

  /** The main loop: bits while there are any, then the token. */
  private walk(): boolean {
    const sc = this.scanner;
    const bits = sc.bits;
    const g = this.graph;
    const cache = this.cache;
    for (;;) {
      if (!this.enabled) {
        if (bits.size > 0) return this.bail('tnt while tracing is off');
        switch (sc.tok) {
          case Tok.Eos:
            return true;
          case Tok.Enabled:
            if (sc.ipSuppressed) return this.bail('tip.pge without ip');
            if (sc.mode !== ExecMode.Unknown) this.mode = sc.mode;
            this.enabled = true;
            this.ip = sc.ip;
            this.id = -1;
            this.boundary = true;
            this.directs = 0;
            break;
          case Tok.Psb:
            if (sc.psbEnabled) return this.bail('psb+ says tracing is on while it is off');
            if (sc.mode !== ExecMode.Unknown) this.mode = sc.mode;
            break;
          case Tok.Overflow:
            this.overflow();
            break;
          case Tok.Nop:
          case Tok.Paging:
            break;
          default:
            return this.bail(sc.tok === Tok.Bail ? sc.bailReason : 'branch trace while tracing is off');
        }
        sc.next();
        continue;
      }
      if (this.mode !== ExecMode.Bit64) return this.bail('not in 64-bit mode');
      let id = this.id;
      if (id < 0) id = this.id = g.lookup(this.ip);
      const avail = bits.size;
      if (avail > 0) {
        // A cached step over up to sixteen conditional branches.
        const max = cache.stepBits;
        const k = avail < max ? avail : max;
        const e = cache.get(id, k, bits.peek(k));
        const used = cache.used[e];
        bits.skip(used);
        this.bits += used;
        if (this.apply(e, used) === false) return false;
        id = this.id;
        const t = g.term[id] as Term;
        // Stopped after its bits (or a long direct chain): step again.
        if (t === Term.Cond || isDirectTerm(t) || bits.size === 0) continue;
        // Bits remain, but the flow needs a return or a TIP first.
        if (t === Term.Ret) {
          this.bits++;
          if (bits.take() === 0) return this.bail('not-taken bit for a compressed return');
          if (!this.retstack.pop()) return this.bail('compressed return with an empty return stack');
          this.branchFrom(id);
          this.ip = this.retstack.ip;
          this.id = -1;
          continue;
        }
        if (t === Term.Bad) return this.bail('undecodable instruction');
        // A deferred TIP: only if every bit left came with the TNT packet right before it.
        if (sc.tok !== Tok.Tip || bits.size > sc.lastPktBits) return this.bail('indirect branch with bits pending');
        if (this.takeTip(t) === false) return false;
        continue;
      }
      switch (sc.tok) {
        case Tok.Eos:
          return true;
        case Tok.Tip: {
          // Through the code that needs no trace, to the branch that takes the TIP.
          const e = cache.get(id, 0, 0);
          if (this.apply(e, 0) === false) return false;
          const t = g.term[this.id] as Term;
          if (isDirectTerm(t)) continue;
          if (t === Term.Cond) return this.bail('conditional branch without a bit');
          if (t === Term.Bad) return this.bail('undecodable instruction');
          if (this.takeTip(t) === false) return false;
          continue;
        }
        case Tok.Disabled:
          if (this.disable(sc.ipSuppressed ? NaN : sc.ip) === false) return false;
          break;
        case Tok.AsyncBranch:
          if (sc.ipSuppressed) return this.bail('asynchronous branch without target');
          if (this.walkTo(sc.at) === false) return false;
          this.ip = sc.ip;
          this.id = -1;
          this.boundary = true;
          break;
        case Tok.AsyncDisabled:
          if (this.walkTo(sc.at) === false) return false;
          if (this.skd022 && this.atVmEntry(sc.at)) return this.bail('skd022');
          this.enabled = false;
          this.boundary = true;
          break;
        case Tok.Psb:
          if (!sc.psbEnabled) return this.bail('psb+ says tracing is off while it is on');
          // Its MODE.Exec/TSX/PIP/VMCS status waits for the flow to reach the FUP's IP.
          if (sc.psbBindsAtIp && this.walkTo(sc.ip) === false) return false;
          if (sc.mode !== ExecMode.Unknown) this.mode = sc.mode;
          break;
        case Tok.Overflow:
          this.overflow();
          break;
        case Tok.Nop:
          break;
        default:
          return this.bail(sc.tok === Tok.Bail ? sc.bailReason : 'event that binds to an instruction');
      }
      this.directs = 0;
      sc.next();
    }
  }

  /**
   * Apply step-cache entry `e` (which used `used` bits) from the current
   * block. The entry's own edges — from its start block into its list and
   * along it — are the same each time it is used after entering its start
   * block, so they are not counted here but once per decode, times the
   * uses ({@link settleUses}); only the edge into the start block depends
   * on where the flow came from.
   */
  private apply(e: number, used: number): boolean {
    const cache = this.cache;
    if (used > 0) this.directs = 0;
    this.directs += cache.directs[e];
    if (this.directs > MAX_DIRECTS_WITHOUT_TRACE) return this.bail('direct branches without trace');
    if (cache.moved[e] !== 0) {
      const g = this.graph;
      const n = cache.listLen[e];
      if (this.boundary && this.pairs === null) {
        this.enter(this.ip, g.hash[this.id]);
        if (n > 0) {
          const uses = this.uses;
          if (e >= uses.length) this.growUses();
          const u = this.uses[e];
          this.uses[e] = u + 1;
          if (u === 0) this.usedEntries[this.usedCount++] = e;
          this.curLoc = cache.lastLoc[e];
        }
      } else {
        if (this.boundary) this.enter(this.ip, g.hash[this.id]);
        if (n > 0) {
          const pool = cache.pool;
          const at = cache.listAt[e];
          const first = pool[at];
          this.enter(g.start[first], g.hash[first]);
          const counts = this.counts!;
          const pairs = this.pairs;
          for (let i = 1; i < n; i++) {
            counts.hit(pool[at + n + i]);
            if (pairs !== null) pairs.add(g.start[pool[at + i - 1]], g.start[pool[at + i]]);
          }
          const last = pool[at + n - 1];
          this.curLoc = cache.lastLoc[e];
          this.curAddr = g.start[last];
        }
      }
      this.boundary = true;
      const peak = cache.peak[e];
      if (peak > 0) {
        const stack = this.retstack;
        stack.keep(CALL_STACK_DEPTH - peak);
        const np = cache.pushLen[e];
        const from = cache.pushAt[e];
        for (let i = 0; i < np; i++) stack.push(cache.pushes[from + i]);
      }
      const stop = cache.stop[e];
      this.id = stop;
      this.ip = g.start[stop];
    }
    return true;
  }

  /** Uses of each step-cache entry since it was last settled, and which entries have any. */
  private uses = new Uint32Array(1024);
  private usedEntries = new Int32Array(1024);
  private usedCount = 0;

  private growUses(): void {
    const n = Math.max(this.cache.capacity, this.uses.length * 2);
    const uses = new Uint32Array(n);
    uses.set(this.uses);
    this.uses = uses;
    const list = new Int32Array(n);
    list.set(this.usedEntries);
    this.usedEntries = list;
  }

  /** Count the deferred edges of the entries used: each entry's edges times its uses. */
  private settleUses(): void {
    const cache = this.cache;
    const counts = this.counts;
    const uses = this.uses;
    const list = this.usedEntries;
    const pool = cache.pool;
    if (counts !== null) {
      const hits = counts.counts;
      const touched = counts.touched;
      let used = counts.used;
      let edges = 0;
      for (let j = 0; j < this.usedCount; j++) {
        const e = list[j];
        const m = uses[e];
        uses[e] = 0;
        const n = cache.listLen[e];
        const from = cache.listAt[e] + n;
        edges += m * n;
        for (let i = from; i < from + n; i++) {
          const id = pool[i];
          const c = hits[id];
          if (c === 0) touched[used++] = id;
          const sum = c + m;
          hits[id] = sum > 255 ? 255 : sum;
        }
      }
      counts.used = used;
      counts.edges += edges;
    }
    this.usedCount = 0;
  }

  /** The block at `addr` (hash `hash`) is entered: count the edge from the last one. */
  private enter(addr: number, hash: number): void {
    const loc = hash & this.mask;
    this.counts!.hit((this.curLoc >>> 1) ^ loc);
    if (this.pairs !== null) this.pairs.add(this.curAddr, addr);
    this.curLoc = loc;
    this.curAddr = addr;
  }

  /** Block `id` (at {@link ip}) runs up to its terminator, which branches. */
  private branchFrom(id: number): void {
    if (this.boundary) this.enter(this.ip, this.graph.hash[id]);
    this.boundary = true;
    this.directs = 0;
  }

  /** The current block's terminator `t` takes the TIP token. */
  private takeTip(t: Term): boolean {
    const sc = this.scanner;
    if (sc.ipSuppressed) return this.bail('tip without ip');
    const id = this.id;
    this.branchFrom(id);
    if (t === Term.IndCall) this.retstack.push(this.graph.next[id]);
    this.tips++;
    this.ip = sc.ip;
    this.id = -1;
    sc.next();
    return true;
  }

  /** Follow block `id`'s direct terminator `t` (it runs). */
  private follow(id: number, t: Term): void {
    const g = this.graph;
    this.branchFrom(id);
    if (t === Term.Call) this.retstack.push(g.next[id]);
    const next = g.targetOf(id);
    this.id = next;
    this.ip = g.start[next];
  }

  /**
   * Move through code that needs no trace until the flow is at `target`
   * (an event's IP), as the flow decoder does while the event waits.
   */
  private walkTo(target: number): boolean {
    const g = this.graph;
    for (let steps = 0; steps < MAX_DIRECTS_WITHOUT_TRACE; steps++) {
      if (this.reachInBlock(target)) return true;
      const id = this.id;
      const t = g.term[id] as Term;
      if (!isDirectTerm(t)) return this.bail('event ip not reached without trace');
      this.follow(id, t);
    }
    return this.bail('direct branches without trace');
  }

  /**
   * Is `target` where the flow is, or in the straight-line code up to the
   * current block's terminator? Then the flow stops there (the code before
   * it ran and entered the block). Looks the block up ({@link id}) if not.
   */
  private reachInBlock(target: number): boolean {
    if (this.ip === target) return true;
    const g = this.graph;
    let id = this.id;
    if (id < 0) id = this.id = g.lookup(this.ip);
    if (!(target > this.ip && target <= g.termIp[id] && this.isInstructionAt(this.ip, target))) return false;
    if (this.boundary) this.enter(this.ip, g.hash[id]);
    this.boundary = false;
    this.ip = target;
    this.id = -1;
    return true;
  }

  /** Is there an instruction boundary at `target`, walking straight-line code from `from`? */
  private isInstructionAt(from: number, target: number): boolean {
    const insn = this.insn;
    let ip = from;
    while (ip < target) {
      if (this.idec.decode(insn, ip, ExecMode.Bit64, ANY_ASID) < 0) return false;
      ip += insn.size;
    }
    return ip === target;
  }

  /** SKD022: is the instruction at `ip` a VMLAUNCH or VMRESUME? */
  private atVmEntry(ip: number): boolean {
    if (this.idec.decode(this.insn, ip, ExecMode.Bit64, ANY_ASID) < 0) return false;
    return this.insn.kind === InsnKind.Vmlaunch || this.insn.kind === InsnKind.Vmresume;
  }

  /**
   * A TIP.PGD: tracing stops after the next branch it can bind to
   * (libipt's pt_insn_at_disabled_event) — with an IP: any branch but a
   * direct one elsewhere, or before the instruction at the IP if the flow
   * gets there first; without: a far branch, or with SKL014 a direct one
   * out of the filter ranges. Direct branches before it are followed.
   */
  private disable(to: number): boolean {
    const g = this.graph;
    const withIp = to === to;
    for (let steps = 0; steps < MAX_DIRECTS_WITHOUT_TRACE; steps++) {
      let id = this.id;
      if (id < 0) id = this.id = g.lookup(this.ip);
      if (g.special[id] !== 0) return this.bail('instruction that can bind an event');
      // With an IP it binds as soon as the flow is there (pt_blk_proceed_to_ip),
      // before the rest of the block runs.
      if (withIp && this.reachInBlock(to)) {
        this.enabled = false;
        return true;
      }
      id = this.id;
      const t = g.term[id] as Term;
      let binds: boolean;
      if (withIp) {
        binds = isDirectTerm(t) ? g.target[id] === to : t !== Term.Bad;
      } else {
        binds = t === Term.Far || (this.skl014 && isDirectTerm(t) && addrFilterCheck(this.config.addrFilter, ipToBigInt(g.target[id])) <= 0);
      }
      if (binds) {
        this.branchFrom(id);
        // The call ran: libipt's block decoder logs its return address
        // before the disable binds (pt_blk_proceed_one_insn), so a later
        // compressed return, after tracing is on again, pops it.
        if (t === Term.Call || t === Term.IndCall) this.retstack.push(g.next[id]);
        this.enabled = false;
        return true;
      }
      if (!isDirectTerm(t)) return this.bail('disable does not bind');
      this.follow(id, t);
    }
    return this.bail('direct branches without trace');
  }

  /** An overflow: the trace lost packets, so no edge joins the blocks around it. */
  private overflow(): void {
    const sc = this.scanner;
    this.curLoc = 0;
    this.curAddr = NaN;
    this.boundary = true;
    if (sc.ipSuppressed) {
      this.enabled = false;
      this.ip = 0;
    } else {
      this.enabled = true;
      this.ip = sc.ip;
    }
    this.id = -1;
  }
}
