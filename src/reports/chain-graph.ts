/**
 * The call-graph view of one code-reuse finding, for the report's chain
 * picture (svg-chain.ts): the functions the chain passes through, placed on
 * the program's call graph.
 *
 * From the finding's evidence: the recent call path (the legitimate calls
 * that led to the hijack), the transfer the detector flagged (for a return,
 * the hijacked return), where that return should have gone, and every
 * gadget of the chain in order. Each address becomes the function that
 * holds it, from the module's static CFG (src/flow/static/cfg.ts) or, without
 * one, from its symbol. The static CFG adds the direct calls between the
 * functions shown, and the blocks of each function, marked by whether the
 * trace ran them and whether a gadget lies in them.
 *
 * Plain JSON-safe data, capped: at most {@link GRAPH_LIMITS} functions,
 * edges and block cells per function.
 */
import type { Finding } from '../analyses/finding.js';
import type { Module, ModuleMap } from '../analyses/modules.js';
import { EdgeKind } from '../flow/static/cfg.js';
import type { ExecutedBlocks } from './drcov.js';

export interface ChainNode {
  /** Function name (or `module+0xoff` without a symbol). */
  name: string;
  module: string | null;
  /** Run-time entry address, or null when not known. */
  entry: string | null;
  /** On the recent call path, and its place there (0: oldest); -1 otherwise. */
  callDepth: number;
  /** The flagged (hijacked) transfer leaves this function. */
  hijacked: boolean;
  /** The hijacked return should have gone back into this function. */
  expectedReturn: boolean;
  /** Gadgets of the chain in this function. */
  gadgets: number;
  /**
   * The function's static blocks in address order, folded into at most
   * `GRAPH_LIMITS.cells` cells: 0 never ran, 1 ran, 2 holds a gadget.
   * Empty without a static CFG.
   */
  cells: number[];
  /** Static blocks of the function (0 without a CFG). */
  blocks: number;
}

export type ChainEdgeKind = 'call' | 'static-call' | 'hijack' | 'expected-return' | 'gadget';

export interface ChainEdge {
  from: number;
  to: number;
  kind: ChainEdgeKind;
  /** Gadget steps (1-based) that went along this edge; empty for other kinds. */
  steps: number[];
  /** How control went ('call', 'ret', 'ijmp', ...). */
  via: string;
}

export interface ChainGraph {
  nodes: ChainNode[];
  /** Functions the evidence touched, before the cap. */
  nodesTotal: number;
  edges: ChainEdge[];
  /** The flagged transfer, when the finding has one. */
  hijack: { kind: string; from: string; to: string; fromSymbol: string | null; toSymbol: string | null } | null;
  /** Gadgets drawn (the finding's chain may have been capped before). */
  steps: number;
}

export const GRAPH_LIMITS = { nodes: 24, callPath: 6, cells: 48, edges: 96 };

/** Run-time address from the findings model's `0x...` text; NaN if it is not one. */
function parseAddress(s: string | null | undefined): number {
  if (typeof s !== 'string' || !/^0x[0-9a-f]{1,16}$/i.test(s)) return NaN;
  return Number(BigInt.asIntN(64, BigInt(s)));
}

/** Per-module static-block run flags, built from the executed blocks once per module. */
export class StaticBlocksRan {
  private readonly byModule = new Map<Module, Uint8Array | null>();

  constructor(
    private readonly executed: ExecutedBlocks,
    private readonly modules: ModuleMap,
  ) {}

  of(m: Module): Uint8Array | null {
    let ran = this.byModule.get(m);
    if (ran !== undefined) return ran;
    const cfg = m.cfg();
    ran = cfg === null ? null : new Uint8Array(cfg.blockCount);
    if (cfg !== null && ran !== null) {
      const flags = ran;
      this.executed.forEach((start, end) => {
        if (this.modules.find(start) !== m) return;
        // A dynamic block may run through several static blocks.
        for (let b = cfg.blockAt(start - m.bias); b >= 0 && b < cfg.blockCount && cfg.blockStart[b] < end - m.bias; b++) flags[b] = 1;
      });
    }
    this.byModule.set(m, ran);
    return ran;
  }
}

/** Where an address lies: a function of a module (by static CFG or symbol). */
interface Place {
  key: string;
  name: string;
  module: Module | null;
  /** Function index in the module's CFG, or -1. */
  fn: number;
  entry: number;
}

function placeOf(ip: number, modules: ModuleMap): Place | null {
  if (Number.isNaN(ip)) return null;
  const m = modules.find(ip);
  if (m === null) return { key: `?${ip}`, name: `0x${BigInt.asUintN(64, BigInt(ip)).toString(16)}`, module: null, fn: -1, entry: NaN };
  const cfg = m.cfg();
  const f = cfg === null ? -1 : cfg.functionAt(ip - m.bias);
  if (cfg !== null && f >= 0) {
    const entry = cfg.functionEntry[f] + m.bias;
    return { key: `${m.name}@${entry}`, name: cfg.functionName[f] || `sub_${entry.toString(16)}`, module: m, fn: f, entry };
  }
  const hit = m.symbolize(ip);
  if (hit !== null && hit.symbol.size > 0) return { key: `${m.name}!${hit.name}`, name: hit.name, module: m, fn: -1, entry: ip - hit.offset };
  return { key: `${m.name}+`, name: m.name, module: m, fn: -1, entry: NaN };
}

/** The block cells of function `fn` of module `m`: ran, never ran, or gadget. */
function cellsOf(m: Module, fn: number, gadgetIps: readonly number[], ran: StaticBlocksRan): { cells: number[]; blocks: number } {
  const cfg = m.cfg();
  if (cfg === null || fn < 0) return { cells: [], blocks: 0 };
  const blocks = Array.from(cfg.blocksOf(fn)).sort((a, b) => cfg.blockStart[a] - cfg.blockStart[b]);
  const flags = ran.of(m);
  const gadgetBlocks = new Set<number>();
  for (const ip of gadgetIps) {
    const b = cfg.blockAt(ip - m.bias);
    if (b >= 0) gadgetBlocks.add(b);
  }
  const n = Math.min(blocks.length, GRAPH_LIMITS.cells);
  const cells = new Array<number>(n).fill(0);
  blocks.forEach((b, i) => {
    const c = Math.floor((i * n) / blocks.length);
    const v = gadgetBlocks.has(b) ? 2 : flags !== null && flags[b] ? 1 : 0;
    cells[c] = Math.max(cells[c], v);
  });
  return { cells, blocks: blocks.length };
}

/** True if function `a` of `m` has a direct call (or tail call) to the entry of function `b`. */
function callsDirectly(m: Module, a: number, b: number): boolean {
  const cfg = m.cfg();
  if (cfg === null || a < 0 || b < 0) return false;
  const target = cfg.functionEntry[b];
  for (const blk of cfg.blocksOf(a)) {
    for (let e = cfg.edgeFirst[blk]; e < cfg.edgeFirst[blk + 1]; e++) {
      const k = cfg.edgeKind[e];
      if ((k === EdgeKind.Call || k === EdgeKind.TailCall) && cfg.edgeTarget[e] === target) return true;
    }
  }
  return false;
}

/** The chain graph of a finding with a gadget chain, or null when it has none. */
export function buildChainGraph(f: Finding, modules: ModuleMap, ran: StaticBlocksRan): ChainGraph | null {
  if (f.chain === null || f.chain.length === 0) return null;
  const places: Place[] = [];
  const nodeOf = new Map<string, number>();
  const nodes: ChainNode[] = [];
  const gadgetIps: number[][] = [];
  let total = 0;
  /** Node index of an address's function, or -1 when the cap is reached. */
  const node = (ip: number): number => {
    const p = placeOf(ip, modules);
    if (p === null) return -1;
    const known = nodeOf.get(p.key);
    if (known !== undefined) return known;
    total++;
    if (nodes.length >= GRAPH_LIMITS.nodes) return -1;
    const i = nodes.length;
    nodeOf.set(p.key, i);
    places.push(p);
    gadgetIps.push([]);
    nodes.push({
      name: p.name,
      module: p.module?.name ?? null,
      entry: Number.isNaN(p.entry) ? null : `0x${BigInt.asUintN(64, BigInt(p.entry)).toString(16)}`,
      callDepth: -1,
      hijacked: false,
      expectedReturn: false,
      gadgets: 0,
      cells: [],
      blocks: 0,
    });
    return i;
  };
  const edges: ChainEdge[] = [];
  const edge = (from: number, to: number, kind: ChainEdgeKind, via: string, step = 0): void => {
    if (from < 0 || to < 0) return;
    let e = edges.find((x) => x.from === from && x.to === to && x.kind === kind);
    if (e === undefined) {
      if (edges.length >= GRAPH_LIMITS.edges) return;
      e = { from, to, kind, steps: [], via };
      edges.push(e);
    }
    if (step > 0) e.steps.push(step);
  };

  // The legitimate calls that led here (the last few), oldest first.
  const calls = f.callPath.slice(-GRAPH_LIMITS.callPath);
  let depth = 0;
  for (const c of calls) {
    const site = node(parseAddress(c.site));
    const callee = node(parseAddress(c.target));
    for (const n of [site, callee]) if (n >= 0 && nodes[n].callDepth < 0) nodes[n].callDepth = depth++;
    if (site !== callee) edge(site, callee, 'call', 'call');
  }

  // The flagged transfer: for a return, the hijacked one.
  const t = f.transfer;
  let previous = -1;
  if (t !== null) {
    const from = node(parseAddress(t.from));
    const to = node(parseAddress(t.to));
    if (from >= 0) nodes[from].hijacked = true;
    edge(from, to, 'hijack', t.kind);
    if (t.to === f.chain[0].address) previous = from;
    const expected = node(parseAddress(typeof f.details.expected === 'string' ? f.details.expected : null));
    if (expected >= 0) {
      nodes[expected].expectedReturn = true;
      edge(from, expected, 'expected-return', 'ret');
    }
  }

  // The gadgets in order.
  f.chain.forEach((g, i) => {
    const ip = parseAddress(g.address);
    const n = node(ip);
    if (n < 0) return;
    nodes[n].gadgets++;
    gadgetIps[n].push(ip);
    if (previous >= 0 && i > 0) edge(previous, n, 'gadget', g.enteredBy, i + 1);
    previous = n;
  });

  // Direct calls the static CFG knows between the functions shown.
  for (let a = 0; a < nodes.length; a++) {
    for (let b = 0; b < nodes.length; b++) {
      const pa = places[a];
      const pb = places[b];
      if (a === b || pa.module === null || pa.module !== pb.module) continue;
      if (edges.some((e) => e.from === a && e.to === b && e.kind === 'call')) continue;
      if (callsDirectly(pa.module, pa.fn, pb.fn)) edge(a, b, 'static-call', 'call');
    }
  }

  nodes.forEach((n, i) => {
    const p = places[i];
    if (p.module !== null) Object.assign(n, cellsOf(p.module, p.fn, gadgetIps[i], ran));
  });
  return {
    nodes,
    nodesTotal: total,
    edges,
    hijack: t === null ? null : { kind: t.kind, from: t.from, to: t.to, fromSymbol: t.fromSymbol, toSymbol: t.toSymbol },
    steps: f.chain.length,
  };
}
