/**
 * A thread life's trace on per-CPU streams (src/reports/life-trace.ts):
 * runs on different CPUs have offsets in different streams, which may
 * overlap. A finding is placed in the run its detector made it in, not in
 * the first run whose span happens to hold its offset.
 */
import { describe, expect, it } from 'vitest';
import type { Finding } from '../src/analyses/finding.js';
import type { InsnDecoder } from '../src/flow/insn-decoder.js';
import { LifeTrace } from '../src/reports/life-trace.js';

function finding(detector: string, offset: number): Finding {
  return { detector, kind: 'k', severity: 'high', message: '', offset, cr3: null, pid: 1, tid: 1, transfer: null, callPath: [], chain: null, details: {} } as Finding;
}

const cpu = (offset: number): InsnDecoder => ({ offset }) as unknown as InsnDecoder;

describe('LifeTrace', () => {
  // Run A on CPU 0 spans [100, 200] of its stream; run B on CPU 1 spans [150, 260] of another; run C on CPU 0 again [300, 350].
  function threeRuns(found: (run: number) => Map<string, number>): LifeTrace {
    const t = new LifeTrace();
    t.open(cpu(100), 100, found(0)).close(200);
    t.open(cpu(150), 150, found(1)).close(260);
    t.open(cpu(300), 300, found(2)).close(350);
    return t;
  }

  it('places a finding in the run it was made in, where the offsets of two runs overlap', () => {
    const inA = finding('rop', 180);
    const inB = finding('rop', 180);
    const inC = finding('rop', 320);
    const cfiInB = finding('cfi', 155);
    const t = threeRuns((run) => new Map([['rop', [0, 1, 2][run]!], ['cfi', [0, 0, 1][run]!]]));
    const at = t.placeFindings([[inA, inB, inC], [cfiInB]], [inA, inB, inC, cfiInB]);
    expect(t.bytes).toBe(100 + 110 + 50);
    expect(at.get(inA)).toBe(80);
    expect(at.get(inB)).toBe(100 + 30);
    expect(at.get(inC)).toBe(210 + 20);
    expect(at.get(cfiInB)).toBe(100 + 5);
    // The offset alone would put the second in the first run that spans it.
    expect(t.positionOf(inB.offset)).toBe(80);
  });

  it('keeps a finding inside its run when its offset lies past the run (made at the switch)', () => {
    const late = finding('rop', 270);
    const t = threeRuns((run) => new Map([['rop', [0, 0, 1][run]!]]));
    expect(t.placeFindings([[late]], [late]).get(late)).toBe(100 + 110);
  });

  it('places a finding made apart from the walk (FlowGuard) by its offset', () => {
    const fg = finding('flowguard', 320);
    const t = threeRuns(() => new Map());
    expect(t.placeFindings([], [fg]).get(fg)).toBe(210 + 20);
  });
});
