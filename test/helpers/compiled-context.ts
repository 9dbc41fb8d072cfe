/**
 * A small C program compiled without PIE (fixed addresses) and loaded for
 * the detectors: its image, module map, code facts and evidence, and a
 * DetectorContext over them, for detector unit tests.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CodeFacts } from '../../src/analyses/code-facts.js';
import type { DetectorContext } from '../../src/analyses/detector-base.js';
import { EvidenceBuilder } from '../../src/analyses/evidence.js';
import { ModuleMap } from '../../src/analyses/modules.js';
import type { ElfSymbol } from '../../src/flow/elf.js';
import { loadElf } from '../../src/flow/elf.js';
import { Image } from '../../src/flow/image.js';
import { ByteSourceCache } from '../../src/flow/section.js';

export interface CompiledProgram {
  /** The executable. */
  path: string;
  /** The program's symbol `name` (it must exist). */
  symbol(name: string): ElfSymbol;
  /** A context over the program for one detector: `offset` reports the trace offset, `monitor` is hook-skip's list. */
  context(offset: () => number, monitor: string[]): DetectorContext;
}

/** Compile `source` as `dir/name` (gcc -O0, no PIE, no CET) and load it. */
export function compiledProgram(dir: string, name: string, source: string): CompiledProgram {
  const src = join(dir, `${name}.c`);
  writeFileSync(src, source);
  const path = join(dir, name);
  execFileSync('gcc', ['-O0', '-fno-pie', '-no-pie', '-fcf-protection=none', '-o', path, src]);
  const image = new Image();
  const loaded = loadElf(image, new ByteSourceCache(), path);
  const modules = new ModuleMap();
  modules.addElf(path, loaded.elf, loaded.loadOffset);
  const facts = new CodeFacts(image);
  const evidence = new EvidenceBuilder(facts, modules);
  return {
    path,
    symbol: (n) => loaded.elf.symbols.find((s) => s.name === n)!,
    context: (offset, monitor) => ({ image, modules, facts, evidence, thread: { pid: null, tid: null }, offset, params: {}, policyFile: null, monitor, openTrace: null, config: null }),
  };
}
