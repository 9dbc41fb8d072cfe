/**
 * Dormant code, step 2: which executed branch decided that a region never
 * ran, and how much the region matters.
 *
 * A guard is an executed conditional branch whose one side ran and whose
 * other side is a region entry. Regions are ranked by what they call
 * (imports through the PLT and the module's own function names): file,
 * network, process and crypto APIs weigh more than size. The *target* of a
 * region is the block, in the guard's function, whose call reaches the
 * weightiest API (directly or through never-run callees); triggering the
 * region means reaching that block.
 */
import { BlockEndKind, EdgeKind, type ModuleCfg } from '../../flow/static/cfg.js';
import type { BlockExecution, Region } from './coverage-merge.js';

export type ApiCategory = 'file' | 'network' | 'process' | 'crypto' | 'other';

const CATEGORY_WEIGHT: Record<ApiCategory, number> = { file: 40, network: 60, process: 60, crypto: 50, other: 0 };

const CATEGORY_PATTERNS: Array<[ApiCategory, RegExp]> = [
  ['network', /^(socket|connect|bind|listen|accept4?|send|sendto|sendmsg|recv|recvfrom|recvmsg|getaddrinfo|gethostbyname2?|inet_\w+|curl_\w+|SSL_\w+)$/],
  ['process', /^(fork|vfork|clone3?|exec[lv]p?e?|execve|system|popen|posix_spawnp?|kill|ptrace|setuid|setgid|seteuid|setresuid|daemon|prctl)$/],
  ['crypto', /^(EVP_\w+|AES_\w+|SHA\d*\w*|MD5\w*|RC4\w*|RAND_bytes|crypt|crypt_r|getrandom|gcry_\w+|mbedtls_\w+)$/],
  ['file', /^(fopen|fopen64|freopen|open|open64|openat|creat|write|fwrite|fputs|fprintf|unlink|unlinkat|rename|remove|chmod|fchmod|chown|mkdir|rmdir|truncate|ftruncate|symlink|link|mmap)$/],
];

export function apiCategory(name: string): ApiCategory {
  for (const [c, re] of CATEGORY_PATTERNS) if (re.test(name)) return c;
  return 'other';
}

/** An executed conditional branch that kept a region from running. */
export interface Guard {
  /** The executed block that ends with the branch. */
  block: number;
  /** Link-time address of the conditional branch. */
  branchIp: number;
  /** The region side of the branch. */
  regionSide: 'taken' | 'not-taken';
  /** The region entry block on that side. */
  entry: number;
}

export interface CallSite {
  block: number;
  name: string;
  category: ApiCategory;
}

/** A region with its guards, calls, rank and target. */
export interface RankedRegion {
  region: Region;
  guards: Guard[];
  calls: CallSite[];
  categories: ApiCategory[];
  score: number;
  /** Block in the guard's function to reach (see the file comment). */
  target: number;
}

/** Name of the function a call edge reaches: the PLT import or the module's own symbol. */
export function callTargetName(cfg: ModuleCfg, target: number): string {
  const plt = cfg.pltAt(target);
  if (plt !== null) return plt.name || `plt@0x${target.toString(16)}`;
  const f = cfg.functionIndex(target);
  return f >= 0 ? cfg.functionName[f] : `0x${target.toString(16)}`;
}

function callsOf(cfg: ModuleCfg, b: number): Array<{ name: string; target: number }> {
  const out: Array<{ name: string; target: number }> = [];
  if (cfg.blockEndKind[b] !== BlockEndKind.Call && cfg.blockEndKind[b] !== BlockEndKind.Jump) return out;
  for (let e = cfg.edgeFirst[b]; e < cfg.edgeFirst[b + 1]; e++) {
    const k = cfg.edgeKind[e];
    if (k !== EdgeKind.Call && k !== EdgeKind.TailCall) continue;
    out.push({ name: callTargetName(cfg, cfg.edgeTarget[e]), target: cfg.edgeTarget[e] });
  }
  return out;
}

/** The guards of a region: executed conditional branches with a side into one of its entries. */
export function guardsOf(exec: BlockExecution, region: Region): Guard[] {
  const cfg = exec.module.cfg;
  const guards: Guard[] = [];
  const entries = new Set(region.entries);
  for (let b = 0; b < cfg.blockCount; b++) {
    if (!exec.ran[b] || cfg.blockEndKind[b] !== BlockEndKind.CondJump) continue;
    for (let e = cfg.edgeFirst[b]; e < cfg.edgeFirst[b + 1]; e++) {
      const t = cfg.edgeBlock[e];
      if (t < 0 || !entries.has(t)) continue;
      const k = cfg.edgeKind[e];
      guards.push({ block: b, branchIp: cfg.blockLast[b], regionSide: k === EdgeKind.Taken ? 'taken' : 'not-taken', entry: t });
    }
  }
  return guards;
}

/**
 * Rank every region; the most interesting first. `importApis` gives, for an
 * import that one of the program's own libraries defines, the APIs that
 * library function calls (code-space.ts `libraryApis`): a region that calls
 * into the program's own library weighs what the call reaches there.
 */
export function rankRegions(exec: BlockExecution, regions: Region[], importApis: (name: string) => readonly string[] = () => []): RankedRegion[] {
  const cfg = exec.module.cfg;
  const ranked = regions.map((region): RankedRegion => {
    const calls: CallSite[] = [];
    const blockWeight = new Map<number, number>();
    const calleeWeight = new Map<number, number>();
    const reached = new Map<string, ApiCategory>();
    for (const b of region.blocks) {
      for (const c of callsOf(cfg, b)) {
        const category = apiCategory(c.name);
        calls.push({ block: b, name: c.name, category });
        let w = CATEGORY_WEIGHT[category];
        for (const api of importApis(c.name)) {
          const k = apiCategory(api);
          if (!reached.has(api)) w += CATEGORY_WEIGHT[k];
          reached.set(api, k);
        }
        blockWeight.set(b, (blockWeight.get(b) ?? 0) + w);
      }
    }
    // Weight of each never-run callee: what its own blocks call.
    for (const f of region.calleeFunctions) {
      let w = 0;
      for (const b of cfg.blocksOf(f)) w += blockWeight.get(b) ?? 0;
      calleeWeight.set(cfg.functionEntry[f], w);
    }
    const categories = [...new Set([...calls.map((c) => c.category), ...reached.values()].filter((c) => c !== 'other'))];
    const distinct = new Map<string, ApiCategory>(reached);
    for (const c of calls) distinct.set(c.name, c.category);
    let score = region.instructions;
    for (const cat of distinct.values()) score += CATEGORY_WEIGHT[cat];
    // Target: the region block of the guard's function with the weightiest call.
    let target = region.entries[0];
    let best = -1;
    for (const b of region.blocks) {
      if (cfg.blockFunction[b] !== region.function) continue;
      let w = blockWeight.get(b) ?? 0;
      for (const c of callsOf(cfg, b)) w += calleeWeight.get(c.target) ?? 0;
      if (w > best || (w === best && b < target && w > 0)) {
        best = w;
        target = b;
      }
    }
    if (best <= 0) target = region.entries[0];
    return { region, guards: guardsOf(exec, region), calls, categories, score, target };
  });
  ranked.sort((a, b) => b.score - a.score || a.region.id - b.region.id);
  return ranked;
}
