/**
 * The detector interface and the registry of detectors by name.
 *
 * A detector is a {@link FlowConsumer} (it sees only the control-flow
 * stream, never packets; FlowGuard's fast path is the one documented
 * exception) with a name, its parameters and its findings. Each lives in
 * its own file; this registry is the one place that lists them.
 */
import type { Detector, DetectorContext } from './detector-base.js';
import { DETECTOR_PARAMS, type ParamSpec } from './detector-params.js';
import { CfiDetector } from './cfi.js';
import { FlowGuardDetector } from './flowguard.js';
import { HookSkipDetector } from './hook-skip.js';
import { InterModuleDetector } from './inter-module.js';
import { RopDetector } from './rop.js';
import { ShadowStackDetector } from './shadow-stack.js';

export type { Detector, DetectorContext } from './detector-base.js';
export { ParamError, validateDetectorParams, type ParamSpec } from './detector-params.js';

export interface DetectorInfo {
  name: string;
  description: string;
  /** Run when no --detect list is given. */
  byDefault: boolean;
  /** Its `--param` keys with type, range and default. */
  params: readonly ParamSpec[];
  /**
   * It reads the raw trace in a pass of its own (`runStandalone`), not the
   * control-flow stream: `analyze --jobs` runs it whole, beside the pieces.
   */
  standalone?: true;
  create(ctx: DetectorContext): Detector;
}

export const DETECTORS: readonly DetectorInfo[] = [
  {
    name: 'shadow-stack',
    params: DETECTOR_PARAMS['shadow-stack'],
    description: 'returns must go to the matching call site (per thread and address space; longjmp, unwinding, signals, coroutines tolerated)',
    byDefault: true,
    create: (ctx) => new ShadowStackDetector(ctx),
  },
  {
    name: 'rop',
    params: DETECTOR_PARAMS['rop'],
    description: 'kBouncer-style ROP chains, JOP/COP chains and dispatchers, SROP',
    byDefault: true,
    create: (ctx) => new RopDetector(ctx),
  },
  {
    name: 'cfi',
    params: DETECTOR_PARAMS['cfi'],
    description: 'indirect calls/jumps and returns checked against a whitelist from the static CFG',
    byDefault: true,
    create: (ctx) => new CfiDetector(ctx),
  },
  {
    name: 'inter-module',
    params: DETECTOR_PARAMS['inter-module'],
    description: 'control entering another module only at its exports and PLT targets',
    byDefault: true,
    create: (ctx) => new InterModuleDetector(ctx),
  },
  {
    name: 'flowguard',
    params: DETECTOR_PARAMS['flowguard'],
    description: 'credit-labelled CFG checked at syscall boundaries: packet-level fast path, full decode on misses',
    byDefault: false,
    standalone: true,
    create: (ctx) => new FlowGuardDetector(ctx),
  },
  {
    name: 'hook-skip',
    params: DETECTOR_PARAMS['hook-skip'],
    description: 'control entering a monitored function past its entry (skipping an inline hook)',
    byDefault: false,
    create: (ctx) => new HookSkipDetector(ctx),
  },
];

export function detectorInfo(name: string): DetectorInfo | undefined {
  return DETECTORS.find((d) => d.name === name);
}

export const DETECTOR_NAMES: readonly string[] = DETECTORS.map((d) => d.name);

/** True for a detector that reads the raw trace in a pass of its own ({@link DetectorInfo.standalone}). */
export function isStandaloneName(name: string): boolean {
  return detectorInfo(name)?.standalone === true;
}
