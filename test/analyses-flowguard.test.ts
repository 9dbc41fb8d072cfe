import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeTrace } from '../src/analyses/analyze.js';
import { rawInput } from './helpers/inputs.js';
import { CreditedEdges, scanTipEdges, trainFlowGuardPolicy } from '../src/analyses/flowguard.js';
import { loadPolicy } from '../src/analyses/policy.js';
import { REAL_TRACES } from './helpers/vectors.js';

const unzip = { trace: join(REAL_TRACES, 'unzip', 'trace.pt'), raw: [join(REAL_TRACES, 'unzip', 'seg_400000.bin') + ':0x400000'], elf: [], cpu: '6/158' };

describe('flowguard', () => {
  it('reads TIP-pair edges and syscall-boundary checks from packets alone', () => {
    const input = rawInput(unzip);
    const edges = new CreditedEdges();
    let checks = 0;
    const scan = scanTipEdges(input.trace, (a, b) => edges.set(a, b, 1), () => checks++);
    expect(scan.packets).toBeGreaterThan(1000);
    expect(scan.tips).toBeGreaterThan(100);
    expect(edges.size).toBeGreaterThan(10);
    // The IP filter disables tracing at every call into libc: many checks.
    expect(checks).toBeGreaterThan(50);
  });

  it('untrained: windows go to the slow path; trained on the same run: every check settles on the fast path', () => {
    const input = rawInput(unzip);
    const cold = analyzeTrace(input, { detectors: ['flowguard'] });
    const cs = cold.detectors[0].stats;
    expect(cs.checks).toBeGreaterThan(50);
    expect(cs.slowWindows).toBeGreaterThan(0);
    expect(cs.slowInstructions).toBeGreaterThan(0);
    expect(cold.findings).toEqual([]);
    expect(cold.unchecked.some((u) => /no trained edges/.test(u.reason))).toBe(true);

    const policy = join(mkdtempSync(join(tmpdir(), 'ptscope-fg-')), 'fg.json');
    const n = trainFlowGuardPolicy(policy, [input.trace]);
    expect(n).toBeGreaterThan(10);
    expect(loadPolicy(policy).flowguard?.edges?.length).toBe(n);
    const warm = analyzeTrace(input, { detectors: ['flowguard'], policyFile: policy });
    const ws = warm.detectors[0].stats;
    expect(ws.checks).toBe(cs.checks);
    expect(ws.fastFraction).toBe(1);
    expect(ws.slowWindows).toBe(0);
    expect(ws.fastPacketsPerSecond).toBeGreaterThan(0);
    expect(warm.findings).toEqual([]);
  }, 60000);
});
