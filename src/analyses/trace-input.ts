/**
 * What an analysis reads: one stream of a {@link Recording} with its memory
 * image, the modules mapped in it (for symbols and the static CFG) and its
 * decoder configuration. Built only from the model, so every analysis takes
 * every input format (bundle, perf.data, raw trace with images).
 */
import type { DecoderConfig } from '../packets/config.js';
import type { Image } from '../flow/image.js';
import type { InsnDecoder } from '../flow/insn-decoder.js';
import { ControlFlowWalker, type FlowConsumer } from '../flow/control-flow.js';
import { openInsnDecoder, readStream } from '../sources/model/decoders.js';
import { openRecording, type OpenOptions } from '../sources/import/open-recording.js';
import { streamTitle, type ImageMapping, type Recording, type TraceStream } from '../sources/model/recording.js';
import { ModuleMap } from './modules.js';

export interface TraceInput {
  /** What to call it in output: the recording, plus the stream when there are several. */
  readonly name: string;
  readonly recording: Recording;
  readonly stream: TraceStream;
  readonly image: Image;
  readonly modules: ModuleMap;
  readonly config: DecoderConfig;
  /** Notes about the input itself (an image that could not be loaded). */
  readonly notes: string[];
  /** The whole trace in memory, read on first use (packet-level passes only). */
  readonly trace: Uint8Array;
}

/** Module maps are built once per mapping set (threads of one process share one). */
const moduleMaps = new WeakMap<readonly ImageMapping[], ModuleMap>();

export function modulesOf(mappings: readonly ImageMapping[]): ModuleMap {
  let modules = moduleMaps.get(mappings);
  if (modules === undefined) {
    modules = new ModuleMap();
    for (const m of mappings) modules.addMapping(m.file, m.offset, m.size, m.address, m.displayName, m.runtime !== null);
    moduleMaps.set(mappings, modules);
  }
  return modules;
}

/** One stream of a recording as an analysis input. */
export function traceInput(recording: Recording, stream: TraceStream): TraceInput {
  let bytes: Uint8Array | null = null;
  const several = recording.streams.length > 1;
  return {
    name: several ? `${recording.name} ${streamTitle(stream)}` : recording.name,
    recording,
    stream,
    image: stream.image,
    modules: modulesOf(stream.mappings),
    config: stream.config,
    notes: [...stream.notes],
    get trace(): Uint8Array {
      bytes ??= readStream(stream);
      return bytes;
    },
  };
}

/** Every non-empty stream of a recording as analysis inputs (at least one). */
export function traceInputs(recording: Recording): TraceInput[] {
  const streams = recording.streams.filter((s) => s.size > 0);
  const list = streams.length > 0 ? streams : recording.streams.slice(0, 1);
  if (list.length === 0) throw new Error(`${recording.name}: the recording has no trace stream`);
  return list.map((s) => traceInput(recording, s));
}

/** An instruction decoder over the input's stream. */
/**
 * True when the stream's thread began with a history no stream of the
 * recording holds from its start: a forked child's first stream continues
 * its parent's stack (a longjmp to a setjmp made before the fork, returns
 * into the parent's frames). A new thread starts empty, and an exec starts
 * a new program: neither inherits.
 */
export function inheritsHistory(input: TraceInput): boolean {
  const s = input.stream;
  if (s.pid === null || s.tid !== s.pid || s.program !== undefined) return false;
  const ppid = input.recording.processes.find((p) => p.pid === s.pid)?.ppid ?? null;
  return ppid !== null && input.recording.processes.some((p) => p.pid === ppid);
}

export function insnDecoderFor(input: TraceInput): InsnDecoder {
  return openInsnDecoder(input.stream, undefined, input.config);
}

/**
 * A walker over the input's stream for `consumers`. A per-CPU stream
 * follows its tasks: each run decodes with its process's image, and
 * consumers that keep per-thread state hear of each change (onTask).
 */
export function walkerFor(input: TraceInput, consumers: readonly FlowConsumer[], decoder: InsnDecoder = insnDecoderFor(input)): ControlFlowWalker {
  const walker = new ControlFlowWalker(decoder, consumers);
  walker.tasks = input.stream.tasks?.() ?? null;
  return walker;
}

/**
 * Open any input and take its first stream as an analysis input (tools,
 * tests and benchmarks; commands iterate every stream).
 */
export function openTraceInput(path: string, options: OpenOptions = {}): TraceInput {
  return traceInputs(openRecording(path, options))[0]!;
}
