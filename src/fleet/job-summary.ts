/**
 * One line about a finished job's result, for `submit --wait` and
 * `ptscope jobs` (the whole result is there with --json). Results come
 * from Redis: every field is read defensively and printed through
 * {@link printable}.
 */
import { printable } from './queue.js';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj {
  return v !== null && typeof v === 'object' ? (v as Obj) : {};
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function analyzeLine(r: Obj): string {
  const summaries = (Array.isArray(r.records) ? r.records : []).map(obj).filter((x) => x.type === 'summary');
  const insns = summaries.reduce((n, s) => n + num(obj(s.flow).instructions), 0);
  return `${plural(num(r.findings), 'finding')} in ${insns} instructions${num(r.status) === 1 ? ' (trace partly decoded)' : ''}`;
}

/** The one-line summary of a completed job's result. */
export function summarizeResult(kind: string, result: unknown): string {
  const r = obj(result);
  switch (kind) {
    case 'record': {
      const exit = obj(r.exit);
      const how = exit.stopped ? `stopped (${String(exit.stopped)})` : exit.signal ? `killed by ${String(exit.signal)}` : `exit status ${num(exit.status)}`;
      const insns = obj(r.instructions);
      const line = `bundle ${String(r.bundle)}: ${num(insns.executed)} instructions, ${num(r.traceBytes)} trace bytes, program ${how}`;
      return printable(r.analyze ? `${line}; ${analyzeLine(obj(r.analyze))}` : line, 400);
    }
    case 'analyze':
      return printable(analyzeLine(r), 400);
    case 'dormant': {
      const s = obj(obj(r.report).summary);
      return `${num(s.solved)}/${num(s.attempted)} regions solved, ${num(s.proven)} proven by a re-run`;
    }
    case 'crash': {
      const causes = Array.isArray(obj(r.report).rootCauses) ? (obj(r.report).rootCauses as unknown[]).length : 0;
      return causes > 0 ? `root cause found (${plural(causes, 'place')})` : 'no root cause established';
    }
    case 'classify':
      return `${plural(num(r.flagged), 'window')} at or above the threshold`;
    case 'report':
      return `${plural(num(r.findings), 'finding')}, ${Math.ceil(num(r.bytes) / 1024)} KiB written`;
    case 'segment':
      return `bytes [${num(r.from)}, ${num(r.to)}): ${num(obj(r.flow).instructions)} instructions, summarised`;
    case 'decode': {
      const a = obj(r.analysis);
      return `${plural(num(r.segments), 'segment')}: ${num(obj(a.flow).instructions)} instructions, ${plural(Array.isArray(a.findings) ? a.findings.length : 0, 'finding')}`;
    }
    default:
      return 'done';
  }
}

/** The exit status a finished job stands for: its result's `status` (0 or 1). */
export function resultStatus(result: unknown): number {
  const s = num(obj(result).status);
  return s === 1 ? 1 : 0;
}
