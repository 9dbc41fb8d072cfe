/**
 * The architecture as a test: every import in src/ points down the layers
 * (packets → events → flow → sources → analyses → reports → fleet → cli),
 * analyses read the flow stream rather than packets, and no two modules
 * import each other in a cycle, not even for types.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', 'src');
const LAYERS = ['packets', 'events', 'flow', 'sources', 'analyses', 'reports', 'fleet', 'cli'];
/**
 * Analyses that work on packets by design: FlowGuard's fast path checks
 * TIP/TNT packets against its policy without decoding instructions, and the
 * learned model's features are packet statistics.
 */
const PACKET_ANALYSES = new Set(['analyses/flowguard.ts', 'analyses/learned/features.ts']);

interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  const re = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/gm;
  for (let m; (m = re.exec(text)) !== null; ) {
    const spec = m[3] ?? m[4]!;
    const to = relative(SRC, normalize(join(dirname(file), spec))).replace(/\.js$/, '.ts');
    out.push({ from: relative(SRC, file), to, typeOnly: m[2] !== undefined });
  }
  return out;
}

const files = sources(SRC);
const imports = files.flatMap(importsOf);
const layerOf = (path: string): number => LAYERS.indexOf(path.split('/')[0]!);

describe('layering', () => {
  it('reads every module of src/', () => {
    expect(files.length).toBeGreaterThan(150);
    expect(imports.length).toBeGreaterThan(500);
    // Every relative import names a module that exists.
    const known = new Set(files.map((f) => relative(SRC, f)));
    expect(imports.filter((i) => !known.has(i.to)).map((i) => `${i.from} → ${i.to}`)).toEqual([]);
  });

  it('every import points to the same layer or a lower one', () => {
    const up = imports.filter((i) => layerOf(i.from) >= 0 && layerOf(i.to) > layerOf(i.from));
    expect(up.map((i) => `${i.from} → ${i.to}`)).toEqual([]);
  });

  it('analyses and reports read the flow stream, not packets (but for the packet-level methods)', () => {
    const packetUse = imports.filter((i) => /^(analyses|reports)\//.test(i.from) && i.to.startsWith('packets/') && !i.typeOnly);
    const unexpected = packetUse.filter((i) => !PACKET_ANALYSES.has(i.from) && !i.from.startsWith('reports/'));
    expect(unexpected.map((i) => `${i.from} → ${i.to}`)).toEqual([]);
  });

  it('no import cycle between modules, type imports included (as `madge --circular` counts them)', () => {
    const graph = new Map<string, string[]>();
    for (const f of files) graph.set(relative(SRC, f), []);
    for (const i of imports) graph.get(i.from)!.push(i.to);
    // Depth-first search with colours: a grey target is a back edge.
    const colour = new Map<string, 1 | 2>();
    const cycles: string[] = [];
    const path: string[] = [];
    const visit = (v: string): void => {
      colour.set(v, 1);
      path.push(v);
      for (const w of graph.get(v) ?? []) {
        const c = colour.get(w);
        if (c === 1) cycles.push([...path.slice(path.indexOf(w)), w].join(' → '));
        else if (c === undefined && graph.has(w)) visit(w);
      }
      path.pop();
      colour.set(v, 2);
    };
    for (const v of graph.keys()) if (!colour.has(v)) visit(v);
    expect(cycles).toEqual([]);
  });
});
