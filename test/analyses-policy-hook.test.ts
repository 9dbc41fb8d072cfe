import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TransferKind as K } from '../src/flow/control-flow.js';
import type { DetectorContext } from '../src/analyses/detector-base.js';
import { HookSkipDetector } from '../src/analyses/hook-skip.js';
import { PolicyError, emptyPolicy, loadPolicy, savePolicy } from '../src/analyses/policy.js';
import { CfiDetector } from '../src/analyses/cfi.js';
import { compiledProgram } from './helpers/compiled-context.js';

const dir = mkdtempSync(join(tmpdir(), 'ptscope-policy-'));

describe('policy files', () => {
  it('round-trips a policy', () => {
    const p = emptyPolicy();
    p.cfi = { modules: { prog: { indirectTargets: ['0x401000'] } }, allow: [{ from: '0x1', to: '0x2' }] };
    p.interModule = { mode: 'strict', rules: [{ from: 'prog', to: 'libc.so.6', targets: ['puts', '*plt'] }] };
    savePolicy(join(dir, 'ok.json'), p);
    expect(loadPolicy(join(dir, 'ok.json'))).toEqual(p);
  });

  it.each([
    ['{oops', /not valid JSON/],
    ['[]', /must be a JSON object/],
    ['{"format":"x","version":1}', /not a ptscope policy/],
    ['{"format":"ptscope-policy","version":9}', /version 9 is not supported/],
    ['{"format":"ptscope-policy","version":1,"cfi":{"modules":{"p":{"indirectTargets":["zz"]}}}}', /cfi\.modules\.p\.indirectTargets\[0\]: must be a "0x\.\.\." address/],
    ['{"format":"ptscope-policy","version":1,"interModule":{"mode":"loose"}}', /interModule\.mode: must be "default" or "strict"/],
    ['{"format":"ptscope-policy","version":1,"flowguard":{"edges":[["0x1"]]}}', /flowguard.edges\[0\]/],
    ['null', /must be a JSON object/],
    ['{"format":"ptscope-policy","version":1,"cfi":{"allow":[{"from":"0x1","to":12}]}}', /cfi\.allow\[0\]\.to: must be a "0x\.\.\." address/],
    ['{"format":"ptscope-policy","version":1,"flowguard":{"threshold":-0.5}}', /flowguard\.threshold: must be a number from 0 to 1/],
    ['{"format":"ptscope-policy","version":1,"flowguard":{"edges":[["0x1","0x2",7]]}}', /flowguard\.edges\[0\]\[2\]: must be a credit from 0 to 1/],
    ['{"format":"ptscope-policy","version":1,"cfi":{},"extra":1}', /Unrecognized key: "extra"/],
    ['{"format":"ptscope-policy","version":1,"interModule":{"rules":[{"from":"a","to":"b","targets":[1]}]}}', /interModule\.rules\[0\]\.targets\[0\]: must be a name/],
  ])('rejects %s with one clear line', (text, re) => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, text);
    let err: unknown;
    try {
      loadPolicy(path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    const msg = (err as Error).message;
    expect(msg).toMatch(re);
    expect(msg.startsWith(path + ': ')).toBe(true);
    expect(msg.includes('\n')).toBe(false);
  });

  it('reports an unreadable policy file', () => {
    expect(() => loadPolicy(join(dir, 'missing.json'))).toThrow(/cannot read it \(ENOENT\)/);
    // A FIFO or a directory is refused, never waited on.
    expect(() => loadPolicy(dir)).toThrow(/not a regular file/);
    const fifo = join(dir, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    expect(() => loadPolicy(fifo)).toThrow(/not a regular file/);
  });
});

/** A small program with a monitored function (gcc, no PIE: fixed addresses). */
function buildProgram(): { path: string; ctx: DetectorContext; sym: (n: string) => number } {
  const p = compiledProgram(
    dir,
    'p',
    'int secret(int x) { int y = x * 3; y += 7; return y ^ 5; }\nint other(int x) { return x + 1; }\nint main(void) { return secret(other(1)); }\n',
  );
  return { path: p.path, ctx: p.context(() => 7, ['secret']), sym: (n) => p.symbol(n).value };
}

describe('hook-skip', () => {
  const { ctx, sym } = buildProgram();
  const secret = sym('secret');
  const main = sym('main');

  it('accepts entry through the function start and returns into its body', () => {
    const d = new HookSkipDetector(ctx);
    d.onTransfer(K.DirectCall, main + 4, secret, 5, 2, NaN);
    d.onTransfer(K.Return, sym('other') + 10, secret + 12, 1, 3, NaN);
    expect(d.findings()).toHaveLength(0);
  });

  it('flags a jump to entry+N that skips the hooked entry', () => {
    const d = new HookSkipDetector(ctx);
    d.onTransfer(K.IndirectJump, main + 8, secret + 8, 2, 2, NaN);
    const f = d.findings();
    expect(f).toHaveLength(1);
    expect(f[0].kind).toBe('hook-skip');
    expect(f[0].details.skipped).toBe(8);
    expect(f[0].transfer?.toSymbol).toBe('p!secret+0x8');
    expect(f[0].transfer?.target.length).toBeGreaterThan(0);
  });

  it('accepts a hook trampoline: entry executed (hook jmp), then jump back to entry+N', () => {
    const d = new HookSkipDetector(ctx);
    d.onTransfer(K.DirectCall, main + 4, secret, 5, 2, NaN);
    d.onTransfer(K.DirectJump, secret, 0x7000000, 5, 1, NaN); // the inline hook at the entry
    d.onTransfer(K.DirectJump, 0x7000010, secret + 8, 5, 4, NaN); // trampoline resumes the original
    expect(d.findings()).toHaveLength(0);
  });

  it('notes a monitored name that does not exist', () => {
    const d = new HookSkipDetector({ ...ctx, monitor: ['no_such_function'] });
    expect(d.unchecked().map((n) => n.reason)).toContain('monitored function no_such_function not found in any module\'s symbols');
  });
});

describe('cfi', () => {
  const { ctx, sym } = buildProgram();
  it('flags an indirect call into the middle of a function and a return to a site after no call', () => {
    const d = new CfiDetector(ctx);
    d.onTransfer(K.IndirectCall, sym('main') + 4, sym('secret') + 4, 2, 2, NaN);
    d.onTransfer(K.Return, sym('other') + 12, sym('secret') + 4, 1, 2, NaN);
    expect(d.findings().map((f) => f.kind)).toEqual(['cfi-icall', 'cfi-return']);
    expect(d.findings()[0].callPath.map((c) => c.target)).toEqual([`0x${(sym('secret') + 4).toString(16)}`]);
  });

  it('a policy edge allows a specific transfer', () => {
    const p = emptyPolicy();
    p.cfi = { allow: [{ from: `0x${(sym('main') + 4).toString(16)}`, to: `0x${(sym('secret') + 4).toString(16)}` }] };
    savePolicy(join(dir, 'allow.json'), p);
    const d = new CfiDetector({ ...ctx, policyFile: join(dir, 'allow.json') });
    d.onTransfer(K.IndirectCall, sym('main') + 4, sym('secret') + 4, 2, 2, NaN);
    expect(d.findings()).toHaveLength(0);
  });
});
