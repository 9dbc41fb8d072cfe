/**
 * The policy file shared by the policy-driven detectors (`--policy FILE`):
 * one JSON object with a section per detector.
 *
 *   {
 *     "format": "ptscope-policy", "version": 1,
 *     "cfi": { "modules": { "<module>": { "indirectTargets": ["0x..."], "returnSites": ["0x..."] } },
 *              "allow": [{ "from": "0x...", "to": "0x..." }] },
 *     "interModule": { "mode": "default" | "strict",
 *                      "rules": [{ "from": "prog", "to": "libc.so.6", "targets": ["puts", "0x1234", "*exports"] }] },
 *     "flowguard": { "edges": [["0x...", "0x...", credit], ...], "threshold": n }
 *   }
 *
 * Module addresses in "cfi.modules" are link-time (portable across load
 * addresses); "allow" edges are run-time addresses. A file that cannot be
 * read or parsed gives one line: `<file>: <what is wrong>`.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export const POLICY_FORMAT = 'ptscope-policy';
export const POLICY_VERSION = 1;

export interface CfiModulePolicy {
  indirectTargets?: string[];
  returnSites?: string[];
}

export interface InterModuleRule {
  from: string;
  to: string;
  targets: string[];
}

export interface PolicyFile {
  format: typeof POLICY_FORMAT;
  version: number;
  cfi?: { modules?: Record<string, CfiModulePolicy>; allow?: { from: string; to: string }[] };
  interModule?: { mode?: 'default' | 'strict'; rules?: InterModuleRule[] };
  flowguard?: { edges?: [string, string, number][]; threshold?: number };
}

/** A malformed policy file: the message is one line. */
export class PolicyError extends Error {}

function fail(path: string, why: string): never {
  throw new PolicyError(`${path}: ${why}`);
}

const HEX = /^0x[0-9a-f]+$/i;

function checkAddrList(path: string, where: string, v: unknown): void {
  if (!Array.isArray(v)) fail(path, `${where} must be an array of "0x..." addresses`);
  v.forEach((a, i) => {
    if (typeof a !== 'string' || !HEX.test(a)) fail(path, `${where}[${i}] is not a "0x..." address: ${JSON.stringify(a)}`);
  });
}

/** Read and validate a policy file. Throws PolicyError (one line) when it is malformed. */
export function loadPolicy(path: string): PolicyFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(path, `cannot read policy (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let p: unknown;
  try {
    p = JSON.parse(text);
  } catch (e) {
    fail(path, `not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p)) fail(path, 'a policy must be a JSON object');
  const o = p as Record<string, unknown>;
  if (o.format !== POLICY_FORMAT) fail(path, `not a ptscope policy (format must be "${POLICY_FORMAT}")`);
  if (o.version !== POLICY_VERSION) fail(path, `policy version ${String(o.version)} is not supported (${POLICY_VERSION} is)`);
  if (o.cfi !== undefined) {
    const c = o.cfi as Record<string, unknown>;
    if (typeof c !== 'object' || c === null) fail(path, 'cfi must be an object');
    if (c.modules !== undefined) {
      if (typeof c.modules !== 'object' || c.modules === null) fail(path, 'cfi.modules must be an object');
      for (const [name, m] of Object.entries(c.modules as Record<string, CfiModulePolicy>)) {
        if (m.indirectTargets !== undefined) checkAddrList(path, `cfi.modules.${name}.indirectTargets`, m.indirectTargets);
        if (m.returnSites !== undefined) checkAddrList(path, `cfi.modules.${name}.returnSites`, m.returnSites);
      }
    }
    if (c.allow !== undefined) {
      if (!Array.isArray(c.allow)) fail(path, 'cfi.allow must be an array of {from, to}');
      (c.allow as unknown[]).forEach((e, i) => {
        const r = e as { from?: unknown; to?: unknown };
        if (typeof r?.from !== 'string' || !HEX.test(r.from) || typeof r.to !== 'string' || !HEX.test(r.to)) {
          fail(path, `cfi.allow[${i}] must be {"from": "0x...", "to": "0x..."}`);
        }
      });
    }
  }
  if (o.interModule !== undefined) {
    const im = o.interModule as Record<string, unknown>;
    if (im.mode !== undefined && im.mode !== 'default' && im.mode !== 'strict') fail(path, `interModule.mode must be "default" or "strict"`);
    if (im.rules !== undefined) {
      if (!Array.isArray(im.rules)) fail(path, 'interModule.rules must be an array');
      (im.rules as unknown[]).forEach((r, i) => {
        const x = r as Record<string, unknown>;
        if (typeof x?.from !== 'string' || typeof x.to !== 'string' || !Array.isArray(x.targets) || !x.targets.every((t) => typeof t === 'string')) {
          fail(path, `interModule.rules[${i}] must be {"from": module, "to": module, "targets": [names or "0x..."]}`);
        }
      });
    }
  }
  if (o.flowguard !== undefined) {
    const fg = o.flowguard as Record<string, unknown>;
    if (fg.edges !== undefined) {
      if (!Array.isArray(fg.edges)) fail(path, 'flowguard.edges must be an array of ["0x...", "0x...", credit]');
      (fg.edges as unknown[]).forEach((e, i) => {
        if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string' || typeof e[1] !== 'string' || typeof e[2] !== 'number') {
          fail(path, `flowguard.edges[${i}] must be ["0x...", "0x...", credit]`);
        }
      });
    }
    if (fg.threshold !== undefined && typeof fg.threshold !== 'number') fail(path, 'flowguard.threshold must be a number');
  }
  return o as unknown as PolicyFile;
}

/** Write a policy file (pretty JSON). */
export function savePolicy(path: string, policy: PolicyFile): void {
  writeFileSync(path, JSON.stringify(policy, null, 1) + '\n');
}

/** An empty policy to fill. */
export function emptyPolicy(): PolicyFile {
  return { format: POLICY_FORMAT, version: POLICY_VERSION };
}

/** Parse "0x..." (validated) to a number. */
export function parseHexAddress(s: string): number {
  return Number(BigInt.asIntN(64, BigInt(s)));
}
