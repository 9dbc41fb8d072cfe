/**
 * The parameters each detector accepts (`--param detector.key=value`):
 * their type, range and default, declared once. The registry
 * (detector.ts) shows them, {@link validateDetectorParams} checks a whole
 * `--param` set before anything runs, and each detector reads its values
 * through {@link paramValue}, so an unknown key, a negative count or a
 * fraction above 1 is a one-line usage error, never a silent default.
 */

export interface ParamSpec {
  key: string;
  /** 'int': a whole number; 'number': any finite number. */
  type: 'int' | 'number';
  min: number;
  max: number;
  default: number;
  description: string;
}

const int = (key: string, min: number, max: number, dflt: number, description: string): ParamSpec => ({ key, type: 'int', min, max, default: dflt, description });
const num = (key: string, min: number, max: number, dflt: number, description: string): ParamSpec => ({ key, type: 'number', min, max, default: dflt, description });

/** Parameters by detector name (a detector without parameters has an empty list). */
export const DETECTOR_PARAMS: Readonly<Record<string, readonly ParamSpec[]>> = {
  'shadow-stack': [
    int('callPath', 0, 256, 8, 'calls shown in a finding\'s call path'),
    int('maxParked', 1, 4096, 64, 'coroutine stacks kept parked per address space'),
  ],
  rop: [
    int('maxGadget', 1, 1000, 20, 'longest gadget in instructions'),
    int('minChain', 1, 1000, 4, 'consecutive ROP links that make a chain'),
    int('window', 1, 4096, 16, 'returns in kBouncer\'s window'),
    int('minViolations', 1, 4096, 2, 'non-call-preceded returns in the window that make a chain (at most the window)'),
    int('minJop', 1, 1000, 4, 'consecutive JOP/COP links that make a chain'),
    int('dispatcherRounds', 1, 1000, 3, 'returns to one dispatcher gadget that make a finding'),
  ],
  cfi: [int('maxPerEdge', 1, 1_000_000, 1, 'findings kept per source -> target edge')],
  'inter-module': [],
  flowguard: [
    num('threshold', 0, 1, 0.5, 'credit at or above which an edge settles on the fast path'),
    int('slowBatch', 1, 1 << 24, 1 << 16, 'missed checks a thread on per-CPU streams holds before its slow path decodes them'),
  ],
  'hook-skip': [],
};

/** A bad `--param`: the message is one line naming the detector and key. */
export class ParamError extends Error {}

function spec(detector: string, key: string): ParamSpec {
  const list = DETECTOR_PARAMS[detector];
  if (list === undefined) throw new ParamError(`--param ${detector}.${key}: no detector '${detector}' (known: ${Object.keys(DETECTOR_PARAMS).join(', ')})`);
  const s = list.find((p) => p.key === key);
  if (s === undefined) {
    const known = list.map((p) => p.key).join(', ');
    throw new ParamError(`--param ${detector}.${key}: ${detector} has no parameter '${key}' (${known === '' ? 'it takes none' : `known: ${known}`})`);
  }
  return s;
}

/** Parse and range-check one value. Throws ParamError. */
export function parseParam(detector: string, key: string, text: string): number {
  const s = spec(detector, key);
  const v = /^\s*$/.test(text) ? NaN : Number(text);
  const what = s.type === 'int' ? 'an integer' : 'a number';
  if (!Number.isFinite(v) || (s.type === 'int' && !Number.isInteger(v)) || v < s.min || v > s.max) {
    throw new ParamError(`--param ${detector}.${key}=${text}: must be ${what} from ${s.min} to ${s.max}`);
  }
  return v;
}

/** The value of `key` for `detector`: the given text checked, or the default. Throws ParamError. */
export function paramValue(detector: string, key: string, params: Readonly<Record<string, string>>, dflt?: number): number {
  const text = params[key];
  if (text === undefined) return dflt ?? spec(detector, key).default;
  return parseParam(detector, key, text);
}

/**
 * Check a whole `--param` set (detector -> key -> text): every detector and
 * key declared, every value in range, and the cross-parameter rule
 * (rop.minViolations at most rop.window). Throws ParamError with one line.
 */
export function validateDetectorParams(params: Readonly<Record<string, Readonly<Record<string, string>>>>): void {
  for (const [detector, kv] of Object.entries(params)) {
    for (const [key, text] of Object.entries(kv)) parseParam(detector, key, text);
  }
  const rop = params.rop ?? {};
  const window = paramValue('rop', 'window', rop);
  const minViolations = paramValue('rop', 'minViolations', rop);
  if (minViolations > window) throw new ParamError(`--param rop.minViolations=${minViolations}: must be at most rop.window (${window})`);
}
