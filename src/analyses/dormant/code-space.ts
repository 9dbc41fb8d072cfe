/**
 * The program's own code that the symbolic executor follows: the main
 * executable and the program's own shared libraries (coverage-merge.ts
 * `tracedOwnLibraries`), each with its image, CFG and exported symbols.
 * A guard in main whose condition comes from `licensed()` in the program's
 * libcheck.so is solved by running libcheck.so's instructions from the
 * snapshot of a library call made inside it, back out into main.
 *
 * Modules are named for rules and reports by their file name (the tag):
 * '' for the main executable, e.g. `libcheck.so` for a library; the shim
 * (native/dormant-shim.c) names its callers the same way.
 */
import { basename } from 'node:path';
import { EdgeKind, type ModuleCfg } from '../../flow/static/cfg.js';
import type { TracedModule } from './coverage-merge.js';
import { ModuleCode } from './module-code.js';
import type { CallSnapshot } from './snapshot.js';

/** Functions of a library followed when weighing a call into it. */
const MAX_FOLLOWED = 64;

export interface CodeModule {
  code: ModuleCode;
  /** '' for the main executable, else the library's file name. */
  tag: string;
  /** The path the recording mapped it from. */
  path: string;
}

/** A link-time address in one module of a {@link CodeSpace}. */
export interface ModuleAddress {
  module: number;
  link: number;
}

export class CodeSpace {
  readonly modules: CodeModule[];

  /** `main` first, then the program's own libraries. */
  constructor(main: TracedModule, libraries: readonly TracedModule[] = []) {
    this.modules = [main, ...libraries].map((t, i) => ({ code: new ModuleCode(t.file, t.cfg), tag: i === 0 ? '' : basename(t.path), path: t.path }));
  }

  get main(): ModuleCode {
    return this.modules[0].code;
  }

  get mainCfg(): ModuleCfg {
    return this.modules[0].code.cfg;
  }

  /** The module an exported function `name` lives in (not the main executable), or null. */
  exportOf(name: string): ModuleAddress | null {
    for (let i = 1; i < this.modules.length; i++) {
      const a = this.modules[i].code.cfg.exportAddressOf(name);
      if (!Number.isNaN(a)) return { module: i, link: a };
    }
    return null;
  }

  private readonly apis = new Map<string, string[]>();

  /**
   * The imports that the function `name` exported by one of the program's
   * own libraries calls, directly or through the library's other
   * functions (at most {@link MAX_FOLLOWED} of them); [] if no own library
   * exports `name`. Ranking weighs a call into the library by these.
   */
  libraryApis(name: string): readonly string[] {
    const known = this.apis.get(name);
    if (known !== undefined) return known;
    const out = new Set<string>();
    const own = this.exportOf(name);
    if (own !== null) {
      const cfg = this.modules[own.module].code.cfg;
      const start = cfg.functionIndex(own.link);
      const seen = new Set<number>(start >= 0 ? [start] : []);
      const stack = [...seen];
      while (stack.length > 0) {
        const f = stack.pop()!;
        for (const b of cfg.blocksOf(f)) {
          for (let e = cfg.edgeFirst[b]; e < cfg.edgeFirst[b + 1]; e++) {
            if (cfg.edgeKind[e] !== EdgeKind.Call && cfg.edgeKind[e] !== EdgeKind.TailCall) continue;
            const t = cfg.edgeTarget[e];
            const plt = cfg.pltAt(t);
            if (plt !== null) {
              if (plt.name) out.add(plt.name);
              continue;
            }
            const g = cfg.functionIndex(t);
            if (g >= 0 && !seen.has(g) && seen.size < MAX_FOLLOWED) {
              seen.add(g);
              stack.push(g);
            }
          }
        }
      }
    }
    const list = [...out];
    this.apis.set(name, list);
    return list;
  }

  /**
   * Each module's load bias in a snapshot run (NaN where it was not
   * loaded). A library is matched by its recorded path, which a confined
   * re-run shows it at, else by its file name (an unconfined re-run loads
   * the bundle's copy from beside the program).
   */
  biasesIn(s: CallSnapshot): number[] {
    return this.modules.map((m, i) => {
      if (i === 0) return s.bias;
      const exact = s.modules.find((x) => x.path === m.path);
      const byName = exact ?? s.modules.find((x, k) => k > 0 && basename(x.path) === m.tag);
      return byName === undefined ? NaN : byName.bias;
    });
  }

  /** The module index of a snapshot's caller, or -1 if it is none of these modules. */
  callerOf(s: CallSnapshot): number {
    if (s.caller === 0) return 0;
    const m = s.modules[s.caller];
    const exact = this.modules.findIndex((x, i) => i > 0 && x.path === m.path);
    return exact >= 0 ? exact : this.modules.findIndex((x, i) => i > 0 && x.tag === basename(m.path));
  }

  /** How a rule or a report names a site: bare hex in the main executable, `file:hex` in a library. */
  siteText(module: number, link: number): string {
    const hex = link.toString(16);
    return module === 0 ? hex : `${this.modules[module].tag}:${hex}`;
  }
}
