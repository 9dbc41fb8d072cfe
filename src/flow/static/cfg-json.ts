/**
 * Save and load a module's static model (cfg.ts) as JSON, so a policy built
 * once from the binaries can be shipped and reused without disassembling
 * again.
 *
 * The document carries `format: "ptscope-cfg"` and a `version`; loading
 * refuses other formats and versions other than {@link CFG_JSON_VERSION}
 * (bump it on any change of the layout). Columns are stored as JSON arrays
 * in the typed arrays' order; unknown edge targets (NaN) are `null`.
 * A process document lists modules with their run-time bases.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ErrorCode, PtError } from '../../packets/errors.js';
import { ModuleCfg, ModuleCfgData } from './cfg.js';
import { ProcessMap } from './module-map.js';

export const CFG_JSON_FORMAT = 'ptscope-cfg';
export const CFG_JSON_VERSION = 2;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const FLOAT_COLUMNS = [
  'blockStart', 'blockEnd', 'blockLast', 'edgeTarget', 'functionEntry', 'addressTaken', 'codePointers',
  'returnSites', 'landingPads', 'callSiteStart', 'callSiteEnd', 'callSitePad',
] as const;
const INT_COLUMNS = {
  blockInsns: Uint32Array,
  blockFunction: Int32Array,
  blockFlags: Uint16Array,
  blockEndKind: Uint8Array,
  edgeFirst: Uint32Array,
  edgeBlock: Int32Array,
  edgeKind: Uint8Array,
  functionFlags: Uint32Array,
  functionBlockFirst: Uint32Array,
  functionBlocks: Int32Array,
} as const;

function bad(why: string): PtError {
  return new PtError(ErrorCode.BadConfig, 0, `bad CFG JSON: ${why}`);
}

/** The JSON document of one module. */
export function cfgToJson(cfg: ModuleCfg): Record<string, Json> {
  const doc: Record<string, Json> = {
    format: CFG_JSON_FORMAT,
    version: CFG_JSON_VERSION,
    name: cfg.name,
    buildId: cfg.buildId,
    bits: cfg.bits,
    linkBase: cfg.linkBase,
    linkEnd: cfg.linkEnd,
    functionName: cfg.functionName,
    exports: cfg.exports.map((e) => ({ name: e.name, address: e.address })),
    plt: cfg.plt.map((p) => ({ ...p, gotSlot: Number.isFinite(p.gotSlot) ? p.gotSlot : null, resolver: Number.isFinite(p.resolver) ? p.resolver : null })),
    jumpTables: cfg.jumpTables.map((t) => ({ ...t, tableAddress: Number.isFinite(t.tableAddress) ? t.tableAddress : null, targets: t.targets })),
    ifuncs: cfg.ifuncs.map((f) => ({ resolver: f.resolver, targets: f.targets })),
  };
  for (const k of FLOAT_COLUMNS) doc[k] = Array.from(cfg[k], (v) => (Number.isNaN(v) ? null : v));
  for (const k of Object.keys(INT_COLUMNS) as (keyof typeof INT_COLUMNS)[]) doc[k] = Array.from(cfg[k]);
  return doc;
}

/** Rebuild a module from {@link cfgToJson}'s document. Throws PtError(BadConfig). */
export function cfgFromJson(doc: unknown): ModuleCfg {
  if (typeof doc !== 'object' || doc === null) throw bad('not an object');
  const o = doc as Record<string, unknown>;
  if (o.format !== CFG_JSON_FORMAT) throw bad(`format is ${JSON.stringify(o.format)}, expected "${CFG_JSON_FORMAT}"`);
  if (o.version !== CFG_JSON_VERSION) throw bad(`version ${JSON.stringify(o.version)} is not supported (expected ${CFG_JSON_VERSION})`);
  const arr = (k: string): unknown[] => {
    const v = o[k];
    if (!Array.isArray(v)) throw bad(`${k} is not an array`);
    return v;
  };
  const num = (k: string): number => {
    const v = o[k];
    if (typeof v !== 'number') throw bad(`${k} is not a number`);
    return v;
  };
  const data: Partial<ModuleCfgData> = {
    name: String(o.name ?? ''),
    buildId: typeof o.buildId === 'string' ? o.buildId : null,
    bits: num('bits'),
    linkBase: num('linkBase'),
    linkEnd: num('linkEnd'),
    functionName: arr('functionName').map(String),
    exports: arr('exports') as ModuleCfgData['exports'],
    plt: (arr('plt') as Record<string, unknown>[]).map((p) => ({
      address: Number(p.address),
      jumpAddress: Number(p.jumpAddress),
      gotSlot: p.gotSlot === null ? NaN : Number(p.gotSlot),
      name: String(p.name),
      section: String(p.section),
      resolver: p.resolver === null || p.resolver === undefined ? NaN : Number(p.resolver),
    })),
    jumpTables: (arr('jumpTables') as Record<string, unknown>[]).map((t) => ({
      ...(t as unknown as ModuleCfgData['jumpTables'][number]),
      tableAddress: t.tableAddress === null ? NaN : Number(t.tableAddress),
    })),
    ifuncs: arr('ifuncs') as ModuleCfgData['ifuncs'],
  };
  const rec = data as Record<string, unknown>;
  for (const k of FLOAT_COLUMNS) rec[k] = Float64Array.from(arr(k), (v) => (v === null ? NaN : Number(v)));
  for (const [k, T] of Object.entries(INT_COLUMNS)) rec[k] = T.from(arr(k).map(Number));
  const n = (data.blockStart as Float64Array).length;
  for (const k of ['blockEnd', 'blockLast', 'blockInsns', 'blockFunction', 'blockFlags', 'blockEndKind'] as const) {
    if ((rec[k] as ArrayLike<number>).length !== n) throw bad(`${k} has ${(rec[k] as ArrayLike<number>).length} entries for ${n} blocks`);
  }
  if ((data.edgeFirst as Uint32Array).length !== n + 1) throw bad('edgeFirst does not match the blocks');
  const nf = (data.functionEntry as Float64Array).length;
  if ((data.functionName as string[]).length !== nf || (data.functionBlockFirst as Uint32Array).length !== nf + 1) {
    throw bad('function columns do not match');
  }
  return new ModuleCfg(data as ModuleCfgData);
}

export function saveCfg(cfg: ModuleCfg, path: string): void {
  writeFileSync(path, JSON.stringify(cfgToJson(cfg)));
}

export function loadCfg(path: string): ModuleCfg {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PtError(ErrorCode.BadFile, 0, `${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`${path}: ${(e as Error).message}`);
  }
  return cfgFromJson(doc);
}

/** A process policy: every module with its run-time base. */
export function processToJson(map: ProcessMap): Record<string, Json> {
  return {
    format: CFG_JSON_FORMAT + '-process',
    version: CFG_JSON_VERSION,
    modules: map.modules.map((m) => ({ base: m.base, cfg: cfgToJson(m.cfg) })),
  };
}

export function processFromJson(doc: unknown): ProcessMap {
  const o = (doc ?? {}) as Record<string, unknown>;
  if (o.format !== CFG_JSON_FORMAT + '-process') throw bad(`format is ${JSON.stringify(o.format)}, expected "${CFG_JSON_FORMAT}-process"`);
  if (o.version !== CFG_JSON_VERSION) throw bad(`version ${JSON.stringify(o.version)} is not supported`);
  if (!Array.isArray(o.modules)) throw bad('modules is not an array');
  const map = new ProcessMap();
  for (const m of o.modules as { base: number; cfg: unknown }[]) map.add(cfgFromJson(m.cfg), m.base);
  return map;
}
