/**
 * `analyze`: run a chosen set of detectors over one trace, from either
 * source the analyses accept:
 * - a recorder bundle directory (manifest.json + trace.pt + images/), or
 * - a raw trace with ptxed-style images (`--raw file[:from-to]:base`,
 *   `--elf file[:base]`).
 * Both become the same {@link TraceInput}: trace bytes, memory image,
 * module map, decoder configuration.
 *
 * {@link analyzeTrace} decodes the trace once (ControlFlowWalker over an
 * InsnDecoder) and feeds every selected detector; FlowGuard runs its own
 * packet-level pass first (see flowguard.ts).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultConfig, type DecoderConfig } from '../packets/config.js';
import { errataFor, parseCpu } from '../packets/cpu.js';
import { PacketDecoder } from '../packets/decoder.js';
import { ANY_ASID, formatIpShort } from '../flow/address-space.js';
import { ControlFlowWalker, type FlowStats } from '../flow/control-flow.js';
import { loadElf } from '../flow/elf.js';
import { Image } from '../flow/image.js';
import { InsnDecoder } from '../flow/insn-decoder.js';
import { addRawImage, isImageArgError, parseElfArg, parseRawArg } from '../flow/raw-image-arg.js';
import { ByteSourceCache } from '../flow/section.js';
import { importBundle, importTrace, type ImportedTrace } from '../sources/trace-import.js';
import { CodeFacts } from './code-facts.js';
import type { Detector, DetectorContext } from './detector-base.js';
import { DETECTORS, detectorInfo } from './detector.js';
import { EvidenceBuilder } from './evidence.js';
import type { Finding, UncheckedNote } from './finding.js';
import { ModuleMap } from './modules.js';

/** One trace and everything needed to decode and judge it. */
export interface TraceInput {
  name: string;
  trace: Uint8Array;
  image: Image;
  modules: ModuleMap;
  config: DecoderConfig;
  /** Notes about the input itself (an image that could not be loaded). */
  notes: string[];
}

/** An imported trace (bundle or perf.data stream) as an analysis input. */
export function fromImported(t: ImportedTrace): TraceInput {
  const modules = new ModuleMap();
  for (const m of t.mappings) modules.addMapping(m.path, m.offset, m.size, m.address, m.displayName);
  return { name: t.name, trace: t.trace, image: t.image, modules, config: t.config, notes: t.notes };
}

/** Read a recorder bundle. Throws an Error with one line of explanation. */
export function loadBundleInput(dir: string): TraceInput {
  return fromImported(importBundle(dir));
}

/** Read a bundle or a perf.data (one input per trace stream). Throws an Error with one line. */
export function loadTraceInputs(path: string, options: { sysroot?: string } = {}): TraceInput[] {
  return importTrace(path, options).map(fromImported);
}

export interface RawInputOptions {
  trace: string;
  raw: string[];
  elf: string[];
  /** `f/m[/s]` or undefined for none. */
  cpu?: string;
}

/** A raw trace with ptxed-style images. Throws an Error with one line of explanation. */
export function loadRawInput(o: RawInputOptions): TraceInput {
  const trace = new Uint8Array(readFileSync(o.trace));
  const image = new Image(o.trace);
  const files = new ByteSourceCache();
  const modules = new ModuleMap();
  const notes: string[] = [];
  for (const arg of o.raw) {
    const r = parseRawArg(arg);
    if (isImageArgError(r)) throw new Error(`--raw ${arg}: ${r.error}`);
    const st = addRawImage(image, files, r);
    if (st < 0) throw new Error(`--raw ${arg}: cannot map the image`);
    const size = r.size === null ? files.file(r.file).bytes.length - Number(r.offset) : Number(r.size);
    modules.addMapping(r.file, Number(r.offset), size, Number(r.base));
  }
  for (const arg of o.elf) {
    const e = parseElfArg(arg);
    const loaded = loadElf(image, files, e.file, e.base);
    for (const w of loaded.warnings) notes.push(w);
    modules.addElf(e.file, loaded.elf, loaded.loadOffset);
  }
  const config = defaultConfig();
  if (o.cpu) {
    const cpu = parseCpu(o.cpu);
    if (!cpu) throw new Error(`--cpu ${o.cpu}: expected family/model[/stepping]`);
    config.cpu = cpu;
    const errata = errataFor(cpu);
    if (typeof errata !== 'number') config.errata = errata;
  }
  return { name: o.trace, trace, image, modules, config, notes };
}

export interface AnalyzeOptions {
  /** Detector names; empty or undefined: the default set. */
  detectors?: string[];
  /** Parameters by detector name, then key. */
  params?: Record<string, Record<string, string>>;
  policyFile?: string | null;
  monitor?: string[];
}

export interface AnalyzeResult {
  input: string;
  detectors: { name: string; parameters: Readonly<Record<string, number | string | boolean>>; stats: Record<string, number> }[];
  findings: Finding[];
  unchecked: UncheckedNote[];
  notes: string[];
  flow: FlowStats;
  seconds: number;
  instructionsPerSecond: number;
}

/** The default detector names. */
export function defaultDetectors(): string[] {
  return DETECTORS.filter((d) => d.byDefault).map((d) => d.name);
}

function makeDecoder(input: TraceInput): InsnDecoder {
  const packets = new PacketDecoder(input.trace, { skd007: input.config.errata.skd007 });
  return new InsnDecoder(packets, input.config, input.image);
}

/** Create the detectors for an input (exported for tests that drive them directly). */
export function createDetectors(input: TraceInput, options: AnalyzeOptions, offset: () => number): Detector[] {
  const names = options.detectors && options.detectors.length > 0 ? options.detectors : defaultDetectors();
  const facts = new CodeFacts(input.image);
  const evidence = new EvidenceBuilder(facts, input.modules);
  return names.map((name) => {
    const info = detectorInfo(name);
    if (!info) throw new Error(`unknown detector '${name}' (known: ${DETECTORS.map((d) => d.name).join(', ')})`);
    const ctx: DetectorContext = {
      image: input.image,
      modules: input.modules,
      facts,
      evidence,
      offset,
      params: options.params?.[name] ?? {},
      policyFile: options.policyFile ?? null,
      monitor: options.monitor ?? [],
      trace: input.trace,
      config: input.config,
    };
    return info.create(ctx);
  });
}

/** Decode the trace once and run the detectors. Findings are sorted by trace offset. */
export function analyzeTrace(input: TraceInput, options: AnalyzeOptions = {}): AnalyzeResult {
  const started = process.hrtime.bigint();
  const decoder = makeDecoder(input);
  const detectors = createDetectors(input, options, () => decoder.offset);
  // FlowGuard reads packets itself; everything else consumes the control-flow stream.
  const standalone = detectors.filter((d) => (d as { standalone?: boolean }).standalone === true);
  const streaming = detectors.filter((d) => !standalone.includes(d));
  for (const d of standalone) (d as unknown as { runStandalone(): void }).runStandalone();
  const walker = new ControlFlowWalker(decoder, streaming);
  const flow = streaming.length > 0 || standalone.length === 0 ? walker.run() : { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const findings = detectors.flatMap((d) => d.findings()).sort((a, b) => a.offset - b.offset);
  const unchecked = detectors.flatMap((d) => d.unchecked());
  if (flow.errors > 0) {
    unchecked.push({ detector: 'analyze', reason: `decode errors: ${flow.errors} stretches of the trace could not be decoded`, count: flow.errors, firstOffset: 0 });
  }
  return {
    input: input.name,
    detectors: detectors.map((d) => ({ name: d.name, parameters: d.parameters, stats: d.stats?.() ?? {} })),
    findings,
    unchecked,
    notes: input.notes,
    flow,
    seconds,
    instructionsPerSecond: seconds > 0 ? flow.instructions / seconds : 0,
  };
}

/**
 * For `npm run bench`: one full analyze pass (decode + the given detectors,
 * the default set if none) over an input; instructions per second.
 */
export function benchAnalyze(input: TraceInput, detectors?: string[]): { instructions: number; seconds: number; instructionsPerSecond: number; findings: number } {
  const r = analyzeTrace(input, { detectors });
  return { instructions: r.flow.instructions, seconds: r.seconds, instructionsPerSecond: r.instructionsPerSecond, findings: r.findings.length };
}

function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

export { formatIpShort };
