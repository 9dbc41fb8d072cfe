/**
 * Detector parameters: declared once with type and range
 * (src/analyses/detector-params.ts), refused in one line when unknown or
 * out of range, by the validator the CLI calls and by the detectors.
 */
import { describe, expect, it } from 'vitest';
import { DETECTORS, ParamError, validateDetectorParams } from '../src/analyses/detector.js';
import { DETECTOR_PARAMS, paramValue } from '../src/analyses/detector-params.js';
import { RopDetector } from '../src/analyses/rop.js';
import { ShadowStackDetector } from '../src/analyses/shadow-stack.js';
import { CodeFacts } from '../src/analyses/code-facts.js';
import type { DetectorContext } from '../src/analyses/detector-base.js';
import { EvidenceBuilder } from '../src/analyses/evidence.js';
import { ModuleMap } from '../src/analyses/modules.js';
import { Image } from '../src/flow/image.js';

function emptyContext(): DetectorContext {
  const image = new Image();
  const modules = new ModuleMap();
  const facts = new CodeFacts(image);
  return { image, modules, facts, evidence: new EvidenceBuilder(facts, modules), thread: { pid: null, tid: null }, offset: () => 0, params: {}, policyFile: null, monitor: [], openTrace: null, config: null };
}

describe('detector parameters', () => {
  it('every registered detector declares its parameters, with defaults inside their ranges', () => {
    for (const d of DETECTORS) {
      expect(DETECTOR_PARAMS[d.name], d.name).toBeDefined();
      expect(d.params).toBe(DETECTOR_PARAMS[d.name]);
      for (const p of d.params) {
        expect(p.default).toBeGreaterThanOrEqual(p.min);
        expect(p.default).toBeLessThanOrEqual(p.max);
        if (p.type === 'int') expect(Number.isInteger(p.default)).toBe(true);
      }
    }
  });

  it('accepts declared keys with values in range', () => {
    expect(() => validateDetectorParams({ rop: { minChain: '3', window: '32', minViolations: '4' }, flowguard: { threshold: '0.25' }, 'shadow-stack': { callPath: '0' } })).not.toThrow();
    expect(paramValue('rop', 'minChain', { minChain: '7' })).toBe(7);
    expect(paramValue('rop', 'minChain', {})).toBe(4);
  });

  it.each([
    [{ rop: { minChian: '3' } }, /--param rop\.minChian: rop has no parameter 'minChian' \(known: maxGadget, minChain/],
    [{ rop: { minChain: '-1' } }, /--param rop\.minChain=-1: must be an integer from 1 to 1000/],
    [{ rop: { minChain: '2.5' } }, /--param rop\.minChain=2\.5: must be an integer/],
    [{ rop: { minChain: '' } }, /--param rop\.minChain=: must be an integer/],
    [{ rop: { window: '1e9' } }, /--param rop\.window=1e9: must be an integer from 1 to 4096/],
    [{ rop: { minViolations: '20' } }, /--param rop\.minViolations=20: must be at most rop\.window \(16\)/],
    [{ flowguard: { threshold: '1.5' } }, /--param flowguard\.threshold=1\.5: must be a number from 0 to 1/],
    [{ flowguard: { threshold: 'NaN' } }, /must be a number from 0 to 1/],
    [{ 'inter-module': { mode: 'strict' } }, /--param inter-module\.mode: inter-module has no parameter 'mode' \(it takes none\)/],
    [{ nope: { x: '1' } }, /--param nope\.x: no detector 'nope'/],
  ])('refuses %j in one line', (params, re) => {
    let err: unknown;
    try {
      validateDetectorParams(params as Record<string, Record<string, string>>);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ParamError);
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).not.toContain('\n');
  });

  it('the detectors refuse bad values themselves too', () => {
    expect(() => new RopDetector({ ...emptyContext(), params: { maxGadget: '-3' } })).toThrow(ParamError);
    expect(() => new RopDetector({ ...emptyContext(), params: { bogus: '1' } })).toThrow(/rop has no parameter 'bogus'/);
    expect(() => new ShadowStackDetector({ ...emptyContext(), params: { maxParked: '0' } })).toThrow(/from 1 to 4096/);
    expect(new RopDetector({ ...emptyContext(), params: { minChain: '6' } }).parameters.minChain).toBe(6);
  });
});
