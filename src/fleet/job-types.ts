/**
 * The jobs a fleet runs, and the data each carries. A job's BullMQ name is
 * its kind; its data is checked against the kind's schema before anything
 * runs, because anyone who can write to the Redis can enqueue a job.
 *
 * The schemas are strict: a field they do not list is refused, so no job
 * can ask for something the command line alone may do (recording without
 * the sandbox, writing outside the store). Paths are store-relative
 * strings; {@link Store} checks them where they are used.
 */
import { z } from 'zod';
import { DETECTOR_NAMES } from '../analyses/detector.js';
import { printable } from './queue.js';

export const JOB_KINDS = ['record', 'analyze', 'dormant', 'crash', 'classify', 'report', 'segment', 'decode'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

const path = z.string().min(1).max(1024);
const detectors = z.array(z.enum(DETECTOR_NAMES as [string, ...string[]])).max(DETECTOR_NAMES.length);
const noNul = (what: string) => z.string().max(4096).refine((s) => !s.includes('\0'), `${what} contains a NUL byte`);

export const recordJob = z.strictObject({
  /** The program, a file in the store. */
  program: path,
  /** Its arguments, passed unchanged (it runs confined). */
  args: z.array(noNul('an argument')).max(256).default([]),
  /** The bundle directory to create in the store. */
  output: path,
  /** A store file the program reads as its standard input. */
  stdin: path.optional(),
  timeoutSec: z.number().int().min(1).max(3600).default(60),
  maxInsns: z.number().int().min(1).max(10_000_000_000).default(1_000_000_000),
  psbPeriod: z.number().int().min(64).max(1 << 20).default(4096),
  /** Run the default detectors over the new bundle in the same job. */
  analyze: z.boolean().default(false),
});

export const analyzeJob = z.strictObject({
  input: path,
  detectors: detectors.optional(),
  /** Detector parameters by detector, then key (`rop.minChain=3` is `{ rop: { minChain: '3' } }`). */
  params: z.record(z.string().max(64), z.record(z.string().max(64), z.string().max(256))).optional(),
  policy: path.optional(),
  monitor: z.array(z.string().max(256)).max(256).optional(),
});

export const dormantJob = z.strictObject({
  input: path,
  rerun: z.boolean().default(false),
  maxRegions: z.number().int().min(1).max(1000).default(10),
  timeoutMs: z.number().int().min(1).max(600_000).optional(),
});

export const crashJob = z.strictObject({
  input: path,
  core: path.optional(),
  /** The crashed process to analyse (the bundle's core of it), when several crashed. */
  pid: z.number().int().min(1).max(4_194_304).optional(),
  window: z.number().int().min(1).max(100_000_000).optional(),
  /** Re-run the program (always confined) for a core when there is none. */
  rerun: z.boolean().default(true),
});

export const classifyJob = z.strictObject({
  input: path,
  model: path.optional(),
  top: z.number().int().min(1).max(10_000).default(5),
});

export const reportJob = z.strictObject({
  inputs: z.array(path).min(1).max(64),
  /** The HTML file to write in the store. */
  output: path,
  title: z.string().max(256).optional(),
  detectors: detectors.optional(),
  policy: path.optional(),
});

const streamIndex = z.number().int().min(0).max(1 << 20);
const offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const segmentJob = z.strictObject({
  input: path,
  stream: streamIndex,
  index: z.number().int().min(0).max(1 << 20),
  from: offset,
  to: offset,
  /** How far the segment's decode reads on past `to` (its overlap with the next segment). */
  limit: offset,
  detectors: detectors.optional(),
});

export const decodeJob = z.strictObject({
  input: path,
  stream: streamIndex,
  segments: z.number().int().min(1).max(1 << 20),
  detectors: detectors.optional(),
});

export const JOB_SCHEMAS = {
  record: recordJob,
  analyze: analyzeJob,
  dormant: dormantJob,
  crash: crashJob,
  classify: classifyJob,
  report: reportJob,
  segment: segmentJob,
  decode: decodeJob,
} as const satisfies Record<JobKind, z.ZodType>;

export type RecordJob = z.output<typeof recordJob>;
export type AnalyzeJob = z.output<typeof analyzeJob>;
export type DormantJob = z.output<typeof dormantJob>;
export type CrashJob = z.output<typeof crashJob>;
export type ClassifyJob = z.output<typeof classifyJob>;
export type ReportJob = z.output<typeof reportJob>;
export type SegmentJob = z.output<typeof segmentJob>;
export type DecodeJob = z.output<typeof decodeJob>;

/** What `submit` may give for a kind (defaults not yet applied). */
export type JobInput<K extends JobKind> = z.input<(typeof JOB_SCHEMAS)[K]>;

export function isJobKind(name: string): name is JobKind {
  return (JOB_KINDS as readonly string[]).includes(name);
}

/** One line for a job whose data does not fit its kind. */
export function jobDataError(kind: string, error: z.ZodError): string {
  const issue = error.issues[0]!;
  const where = issue.path.length > 0 ? issue.path.join('.') : 'data';
  return `${kind} job: ${where}: ${issue.message}`;
}

/** The store path a job is about, for one-line listings (control characters shown as '?'). */
export function jobTarget(kind: string, data: unknown): string {
  return printable(rawTarget(kind, data));
}

function rawTarget(kind: string, data: unknown): string {
  const d = (data ?? {}) as Record<string, unknown>;
  const s = (v: unknown) => (typeof v === 'string' ? v : '?');
  switch (kind) {
    case 'record':
      return `${s(d.program)} -> ${s(d.output)}`;
    case 'report':
      return `${Array.isArray(d.inputs) ? d.inputs.map(s).join(' ') : '?'} -> ${s(d.output)}`;
    case 'segment':
      return `${s(d.input)} [${Number(d.from)}, ${Number(d.to)})`;
    default:
      return s(d.input);
  }
}
