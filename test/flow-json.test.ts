import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFlowCommand } from '../src/cli/flow.js';
import { LineWriter } from '../src/cli/output.js';
import { REAL_TRACES } from './helpers/vectors.js';

function flow(args: string[], cwd: string): string[] {
  const out = new LineWriter(null);
  const prev = process.cwd();
  process.chdir(cwd);
  try {
    runFlowCommand(args, out);
  } finally {
    process.chdir(prev);
  }
  out.flush();
  return out.text.split('\n').filter((l) => l !== '');
}

describe('ptscope flow --json', () => {
  const dir = join(REAL_TRACES, 'unzip');
  const base = ['--cpu', '6/158', '--raw', 'seg_400000.bin:0x400000', '--pt', 'trace.pt'];

  it('emits one JSON object per instruction and event, as many instructions as the text listing', () => {
    const lines = flow(['--json', ...base], dir);
    const objs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const insns = objs.filter((o) => 'class' in o && 'size' in o);
    expect(insns.length).toBe(149576);
    expect(insns[0]).toMatchObject({ bits: 64 });
    expect(typeof insns[0]!.insn).toBe('string');
    expect(objs.some((o) => o.event === 'enabled')).toBe(true);
    const text = flow(['--no-inst', ...base], dir).filter((l) => /^[0-9a-f]{16}$/.test(l));
    expect(insns.map((o) => BigInt(o.ip as string))).toEqual(text.map((l) => BigInt('0x' + l)));
  });

  it('reports decode errors as objects with code, offset and ip', () => {
    const d = join(REAL_TRACES, 'dyn_test');
    const segs = ['555555554000', '7ffff7802000', '7ffff781f000', '7ffff7824000', '7ffff7875000', '7ffff7878000', '7ffff789c000', '7ffff78f1000', '7ffff78fc000', '7ffff7902000', '7ffff7bd2000', '7ffff7fcffff'];
    const raws = segs.flatMap((a) => ['--raw', `seg_${a}.bin:0x${a}`]);
    const errors = flow(['--json', '--no-inst', '--cpu', '6/158', ...raws, '--pt', 'trace.pt'], d)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((o) => 'error' in o);
    expect(errors.length).toBe(14);
    for (const e of errors) expect(e).toMatchObject({ error: 'nomap' });
    expect(typeof errors[0]!.offset).toBe('number');
  });
});
