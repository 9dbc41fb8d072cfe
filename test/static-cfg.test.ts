/**
 * Static disassembly, CFG and policy sets of ELF images (src/flow/static),
 * checked against programs compiled here and against binutils (objdump -d,
 * nm) as independent oracles.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeElfFile, BlockCoverage, BlockFlag, EdgeKind, ModuleCfg } from '../src/flow/static/cfg.js';
import { CFG_JSON_VERSION, cfgFromJson, cfgToJson, processFromJson, processToJson } from '../src/flow/static/cfg-json.js';
import { ProcessMap } from '../src/flow/static/module-map.js';

let dir = '';

function compile(name: string, source: string, flags: string[]): string {
  const src = join(dir, `${name}.c`);
  const out = join(dir, name);
  writeFileSync(src, source);
  execFileSync('gcc', [...flags, '-o', out, src]);
  return out;
}

/** nm's defined text symbols: name -> [address, size]. */
function nmSymbols(path: string, dynamic = false): Map<string, [number, number]> {
  const out = execFileSync('nm', [...(dynamic ? ['-D'] : []), '-S', '--defined-only', path], { encoding: 'utf8' });
  const map = new Map<string, [number, number]>();
  for (const line of out.split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) ([tTwWiI]) (\S+)$/.exec(line.trim());
    if (m) map.set(m[4].replace(/@.*/, ''), [parseInt(m[1], 16), parseInt(m[2], 16)]);
  }
  return map;
}

/** nm's every symbol, with or without a size (assembly labels have none): name -> address. */
function nmAddressOf(path: string): (name: string) => number {
  const syms = new Map(execFileSync('nm', [path], { encoding: 'utf8' }).split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length === 3).map((f) => [f[2]!, parseInt(f[0]!, 16)]));
  return (name) => syms.get(name)!;
}

interface ObjdumpInsn {
  addr: number;
  mnemonic: string;
  /** Direct branch target, or NaN. */
  target: number;
}

/** objdump -d's instructions in [start, end). */
function objdumpRange(path: string, start: number, end: number): ObjdumpInsn[] {
  const out = execFileSync(
    'objdump',
    ['-d', '--no-show-raw-insn', `--start-address=0x${start.toString(16)}`, `--stop-address=0x${end.toString(16)}`, path],
    { encoding: 'utf8' },
  );
  const insns: ObjdumpInsn[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*([0-9a-f]+):\s+(?:(?:bnd|notrack|rep|repz|repnz|lock|data16|cs|ds)\s+)*(\S+)\s*([0-9a-f]*)/.exec(line);
    if (!m) continue;
    const mnemonic = m[2];
    const isBranch = /^(j|call|loop)/.test(mnemonic);
    const target = isBranch && m[3] && !line.includes('*') ? parseInt(m[3], 16) : NaN;
    insns.push({ addr: parseInt(m[1], 16), mnemonic, target });
  }
  return insns;
}

/**
 * Basic blocks of a function from objdump's listing: the instructions
 * reachable from the entry (and from `roots`, e.g. jump-table targets)
 * through fallthrough and direct branches inside [start, end); leaders are
 * the entry, the roots, branch targets and whatever follows a branch or call.
 */
function objdumpBlocks(insns: ObjdumpInsn[], start: number, end: number, roots: number[] = []): { reached: Set<number>; leaders: Set<number> } {
  const index = new Map(insns.map((x, i) => [x.addr, i]));
  const reached = new Set<number>();
  const leaders = new Set<number>([start, ...roots]);
  const work = [start, ...roots];
  while (work.length > 0) {
    let i = index.get(work.pop()!);
    while (i !== undefined && !reached.has(insns[i].addr)) {
      const { addr, mnemonic, target } = insns[i];
      reached.add(addr);
      const branch = /^(j|call|ret|loop|hlt|ud2)/.test(mnemonic);
      if (branch && i + 1 < insns.length) leaders.add(insns[i + 1].addr);
      if (/^(j|loop)/.test(mnemonic) && target >= start && target < end) {
        leaders.add(target);
        work.push(target);
      }
      if (/^(jmp|ret|hlt|ud2)/.test(mnemonic)) break;
      i = i + 1 < insns.length ? i + 1 : undefined;
    }
  }
  for (const l of [...leaders]) if (!reached.has(l)) leaders.delete(l);
  return { reached, leaders };
}

function functionNamed(cfg: ModuleCfg, name: string): number {
  const f = cfg.functionByName(name);
  expect(f, `function ${name}`).toBeGreaterThanOrEqual(0);
  return f;
}

function edgesOf(cfg: ModuleCfg, b: number): { kind: EdgeKind; target: number }[] {
  const out: { kind: EdgeKind; target: number }[] = [];
  for (let e = cfg.edgeFirst[b]; e < cfg.edgeFirst[b + 1]; e++) out.push({ kind: cfg.edgeKind[e], target: cfg.edgeTarget[e] });
  return out;
}

const SWITCH_SRC = `
#include <stdio.h>
volatile int sink;
__attribute__((noipa)) int classify(int x) {
  switch (x) {
  case 0: sink = 11; puts("zero"); break;
  case 1: sink = 22; printf("one %d\\n", x); break;
  case 2: sink = 33; return x * 7;
  case 4: sink = 44; puts("four"); return 4;
  case 5: sink = x; return x - 9;
  case 6: sink = 66; puts("six"); break;
  case 7: sink = 77; return x << 3;
  default: sink = -1; return -1;
  }
  return 0;
}
__attribute__((noipa)) int count_bits(unsigned v) {
  int n = 0;
  while (v) { if (v & 1) n++; else if (v & 4) n += 2; v >>= 1; }
  return n;
}
__attribute__((noipa)) int leaf(int x) { return x * 3 + 1; }
__attribute__((noipa)) int tail(int x) { return leaf(x + 2); }
int main(int argc, char **argv) {
  (void)argv;
  printf("%d %d %d\\n", classify(argc), count_bits(argc), tail(argc));
  puts("done");
  return 0;
}
`;

const FNPTR_SRC = `
#include <stdio.h>
__attribute__((noipa)) static int add1(int x) { return x + 1; }
__attribute__((noipa)) static int sub1(int x) { return x - 1; }
__attribute__((noipa)) static int twice(int x) { return x * 2; }
__attribute__((noipa)) int direct_only(int x) { return x ^ 0x55; }
__attribute__((noipa)) int apply(int (*f)(int), int x) { return f(x) + 1; }
int (*const table[])(int) = { add1, sub1 };
int main(int argc, char **argv) {
  (void)argv;
  int r = apply(twice, argc) + table[argc & 1](argc) + direct_only(argc);
  printf("%d\\n", r);
  return 0;
}
`;

let switchPie = '';
let switchNoPie = '';
let fnptrPie = '';
let fnptrNoPie = '';
let staticProg = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptscope-cfg-'));
  switchPie = compile('switch-pie', SWITCH_SRC, ['-O2', '-fpie', '-pie']);
  switchNoPie = compile('switch-nopie', SWITCH_SRC, ['-O2', '-fno-pie', '-no-pie']);
  fnptrPie = compile('fnptr-pie', FNPTR_SRC, ['-O2', '-fpie', '-pie']);
  fnptrNoPie = compile('fnptr-nopie', FNPTR_SRC, ['-O2', '-fno-pie', '-no-pie']);
  staticProg = compile('static', SWITCH_SRC, ['-O2', '-static']);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('jump tables', () => {
  for (const [label, get, relative] of [
    ['PIE (relative entries)', () => switchPie, true],
    ['non-PIE (absolute jmp *table(,idx,8))', () => switchNoPie, false],
  ] as const) {
    it(`finds the bounded table of a switch, ${label}`, () => {
      const path = get();
      const cfg = analyzeElfFile(path);
      const [start, size] = nmSymbols(path).get('classify')!;
      const tables = cfg.jumpTables.filter((t) => t.jumpAddress >= start && t.jumpAddress < start + size);
      expect(tables).toHaveLength(1);
      const t = tables[0];
      expect(t.relative).toBe(relative);
      expect(t.entrySize).toBe(relative ? 4 : 8);
      // Cases 0..7: `cmp $7; ja default` bounds the table at 8 entries.
      expect(t.bounded).toBe(true);
      expect(t.count).toBe(8);
      expect(t.targets).toHaveLength(8);
      const insns = objdumpRange(path, start, start + size);
      const insnAddrs = new Set(insns.map((i) => i.addr));
      for (const target of t.targets) {
        expect(target).toBeGreaterThanOrEqual(start);
        expect(target).toBeLessThan(start + size);
        expect(insnAddrs.has(target), `target 0x${target.toString(16)} is an instruction`).toBe(true);
      }
      // 7 distinct case bodies, plus the entry for the missing case 3 (a default path).
      const distinct = new Set(t.targets);
      expect(distinct.size).toBeGreaterThanOrEqual(7);
      const ja = insns.find((i) => i.mnemonic === 'ja');
      expect(ja, 'the bounds check guarding the table').toBeDefined();
      // The jump's block has one jump-table edge per distinct target, and each target is a block of classify.
      const jb = cfg.blockAt(t.jumpAddress);
      const edges = edgesOf(cfg, jb);
      expect(edges.every((e) => e.kind === EdgeKind.JumpTable)).toBe(true);
      expect(new Set(edges.map((e) => e.target))).toEqual(distinct);
      const f = functionNamed(cfg, 'classify');
      for (const target of distinct) {
        const b = cfg.blockStartingAt(target);
        expect(b).toBeGreaterThanOrEqual(0);
        expect(cfg.blockFunction[b]).toBe(f);
        expect(cfg.blockFlags[b] & BlockFlag.JumpTableTarget).toBeTruthy();
      }
    });
  }
});

describe('a table read without a bound', () => {
  it('ends where the next table the code names begins, even when that code is only found later (in a gap)', () => {
    // Two relative tables side by side; neither index is bounded (both come from memory). The second
    // dispatch is reached only through the first table, so a gap sweep finds its `lea tab2`. Read on,
    // the first table's entries would be tab2's offsets taken from tab1: addresses inside main.
    const src = join(dir, 'two-tables.s');
    writeFileSync(src, [
      '.text', '.globl main', '.type main, @function', 'main:',
      'lea idx(%rip), %rax', 'movl (%rax), %edi', 'lea tab1(%rip), %rdx', 'movslq (%rdx,%rdi,4), %rcx', 'add %rdx, %rcx', 'jmp *%rcx',
      'case_a:', 'mov $1, %eax', 'jmp out',
      'case_b:', 'lea idx(%rip), %rax', 'movl 4(%rax), %edi', 'lea tab2(%rip), %rdx', 'movslq (%rdx,%rdi,4), %rcx', 'add %rdx, %rcx', 'jmp *%rcx',
      'case_c:', 'mov $3, %eax', 'jmp out',
      'case_d:', 'mov $4, %eax', 'jmp out',
      'out:', 'ret', '.size main, .-main',
      '.section .rodata', '.align 4',
      'tab1: .long case_a-tab1, case_b-tab1',
      'tab2: .long case_c-tab2, case_d-tab2, case_c-tab2, case_d-tab2',
      '.data', 'idx: .long 1, 1',
      '.section .note.GNU-stack,"",@progbits', '',
    ].join('\n'));
    const exe = join(dir, 'two-tables');
    execFileSync('gcc', ['-o', exe, src]);
    const at = nmAddressOf(exe);
    const cfg = analyzeElfFile(exe);
    const byTable = (name: string) => cfg.jumpTables.find((t) => t.tableAddress === at(name));
    const first = byTable('tab1');
    expect(first?.bounded).toBe(false);
    expect(first?.targets).toEqual([at('case_a'), at('case_b')]);
    expect(byTable('tab2')?.targets).toEqual([at('case_c'), at('case_d'), at('case_c'), at('case_d')]);
  });

  // gcc moves the cases that call a cold function into the function's `.cold`
  // part (its own unwind entry; a local symbol unless stripped); with no
  // default case (`__builtin_unreachable`) the switch has no bound, and its
  // table points into both parts, into the middle of the cold one.
  const coldCases = `#include <stdio.h>
#include <stdlib.h>
__attribute__((cold, noinline)) static void report(const char *what, int x) { fprintf(stderr, "%s %d\\n", what, x); }
__attribute__((noinline)) int dispatch(int op, int x) {
  switch (op) {
    case 0: report("zero", x); return -x;
    case 1: return x * 3 + 7;
    case 2: return x ^ 0x55;
    case 3: report("three", x); return x - 9;
    case 4: return (x << 2) + 1;
    case 5: return x / 7;
    default: __builtin_unreachable();
  }
}
int main(int argc, char **argv) { return dispatch(argc - 1, atoi(argv[argc - 1])) & 0x7f; }
`;
  for (const stripped of [false, true]) {
    it(`reads on through the entries in the function's .cold part (${stripped ? 'stripped' : 'with symbols'})`, () => {
      const exe = compile(`cold-cases${stripped ? '-s' : ''}`, coldCases, ['-O2', ...(stripped ? ['-s'] : [])]);
      const unstripped = stripped ? compile('cold-cases-syms', coldCases, ['-O2']) : exe;
      const syms = nmAddressOf(unstripped);
      const cold = syms('dispatch.cold');
      // The shape this test is about: a .cold part, and a table entry inside it (not at its start).
      expect(cold).toBeGreaterThan(0);
      const table = analyzeElfFile(exe).jumpTables.find((t) => t.source === 'table' || t.source === 'indexed');
      expect(table?.bounded).toBe(false);
      expect(table?.source).toBe('table');
      expect(table?.targets).toHaveLength(6);
      const inCold = table!.targets.filter((t) => t >= cold && t < syms('dispatch')).sort((a, b) => a - b);
      expect(inCold).toHaveLength(2);
      expect(inCold[0]).toBe(cold);
      expect(table!.targets.filter((t) => t >= syms('dispatch')).length).toBe(4);
    });
  }

  it('does not read on into a part of another function, nor into one that another function jumps into', () => {
    // `tab`'s second entry lies inside `helper`, an unwind range of its own that
    // nothing calls. With `third` jumping into it, it is another function's code:
    // the read stops there. Without that jump, only the table enters it.
    const build = (name: string, thirdJumps: boolean) => {
      const src = join(dir, `${name}.s`);
      writeFileSync(src, [
        '.text', '.globl main', '.type main, @function', 'main:', '.cfi_startproc',
        'lea idx(%rip), %rax', 'movl (%rax), %edi', 'lea tab(%rip), %rdx', 'movslq (%rdx,%rdi,4), %rcx', 'add %rdx, %rcx', 'jmp *%rcx',
        'case_a:', 'mov $1, %eax', 'ret', '.cfi_endproc', '.size main, .-main',
        'helper:', '.cfi_startproc', 'mov $2, %eax', 'ret',
        'inside_helper:', 'mov $3, %eax', 'ret', '.cfi_endproc',
        'third:', '.cfi_startproc', thirdJumps ? 'jmp inside_helper' : 'ret', '.cfi_endproc',
        '.section .rodata', '.align 4',
        'tab: .long case_a-tab, inside_helper-tab, case_a-tab',
        '.data', 'idx: .long 1',
        '.section .note.GNU-stack,"",@progbits', '',
      ].join('\n'));
      const exe = join(dir, name);
      execFileSync('gcc', ['-o', exe, src]);
      const at = nmAddressOf(exe);
      return { at, table: analyzeElfFile(exe).jumpTables.find((t) => t.tableAddress === at('tab')) };
    };
    const alone = build('part-alone', false);
    expect(alone.table?.targets).toEqual([alone.at('case_a'), alone.at('inside_helper'), alone.at('case_a')]);
    const entered = build('part-entered', true);
    expect(entered.table?.targets).toEqual([entered.at('case_a')]);
  });
});

describe('calls to error(3)', () => {
  it('do not return with a non-zero status, and do with status 0', () => {
    // gcc knows error(EXIT_FAILURE, ...) exits (glibc's bits/error.h), so the
    // next case of the switch follows the call; error(0, ...) returns.
    const exe = compile('error-calls', `#include <error.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
static int level;
int main(int argc, char **argv) {
  int c, flags = 0;
  const char *out = "-";
  while ((c = getopt(argc, argv, "abcdeo:l:vqw")) != -1) {
    switch (c) {
      case 'a': flags |= 1; break;
      case 'b': flags |= 2; break;
      case 'c': flags |= 4; break;
      case 'd': flags |= 8; break;
      case 'e': flags |= 16; break;
      case 'o': out = optarg; break;
      case 'l': level = atoi(optarg); if (level < 0) error(EXIT_FAILURE, 0, "bad level: %s", optarg); break;
      case 'v': level++; break;
      case 'q': level = 0; break;
      case 'w': error(0, 0, "warning: -w is obsolete"); flags |= 32; break;
      default: error(EXIT_FAILURE, 0, "usage: %s [-abcdevqw] [-o file] [-l n]", argv[0]);
    }
  }
  printf("%d %s %d\\n", flags, out, level);
  return 0;
}
`, ['-O2']);
    // Each call to error@plt, with the status its run last put in %edi.
    const dump = execFileSync('objdump', ['-d', '--no-show-raw-insn', exe], { encoding: 'utf8' }).split('\n');
    const calls: { at: number; status: string }[] = [];
    let status = '';
    for (const line of dump) {
      const m = /^\s*([0-9a-f]+):\s+(.*)$/.exec(line);
      if (!m) continue;
      if (/%edi$/.test(m[2]!)) status = /^(mov\s+\$0x[0-9a-f]+|xor\s+%edi),%edi$/.exec(m[2]!)?.[1] ?? '?';
      if (/call\s+[0-9a-f]+ <error@plt>/.test(m[2]!)) calls.push({ at: parseInt(m[1]!, 16), status });
    }
    const exits = calls.filter((c) => c.status === 'mov    $0x1');
    const returns = calls.filter((c) => c.status.startsWith('xor'));
    expect(exits.length).toBeGreaterThanOrEqual(2);
    expect(returns).toHaveLength(1);
    const cfg = analyzeElfFile(exe);
    const kinds = (at: number) => edgesOf(cfg, cfg.blockAt(at)).map((e) => e.kind);
    for (const c of exits) {
      expect(kinds(c.at)).toContain(EdgeKind.Call);
      expect(kinds(c.at)).not.toContain(EdgeKind.ReturnSite);
    }
    expect(kinds(returns[0]!.at)).toContain(EdgeKind.ReturnSite);
  });
});

describe('jump tables that need more than one guard shape', () => {
  // main: a switch in a loop whose base register is set before the loop, one case in a `.cold` fragment
  // (own symbol and FDE) that jumps back into the loop: until the table is known, nothing reaches that
  // fragment, and a slice through it finds no value for the base. classify: the guard compares the
  // slot the index is then loaded from (`cmpb $2, (%r8,%rsi); ja; movzbl (%r8,%rsi), %eax`).
  const src = (): string => {
    const path = join(dir, 'loop-tables.s');
    writeFileSync(path, [
      '	.text',
      '	.globl	main',
      '	.type	main, @function',
      'main:',
      '	.cfi_startproc',
      '	push	%r14',
      '	push	%rbx',
      '	xor	%ecx, %ecx',
      '	lea	tab(%rip), %r14',
      '	lea	data(%rip), %rbx',
      '	jmp	check',
      'loop:',
      '	movl	(%rbx), %edx',
      '	add	$4, %rbx',
      '	cmp	$2, %edx',
      '	ja	done',
      '	movslq	(%r14,%rdx,4), %rax',
      '	add	%r14, %rax',
      '	jmp	*%rax',
      'c0:	inc	%ecx',
      'c1:	inc	%ecx',
      'next:	jmp	loop',
      'check:	jmp	next',
      'done:	mov	%ecx, %eax',
      '	pop	%rbx',
      '	pop	%r14',
      '	ret',
      '	.cfi_endproc',
      '	.size	main, .-main',
      '	.type	main.cold, @function',
      'main.cold:',
      '	.cfi_startproc',
      'c2:	add	$2, %ecx',
      '	jmp	next',
      '	.cfi_endproc',
      '	.size	main.cold, .-main.cold',
      '	.globl	classify',
      '	.type	classify, @function',
      'classify:',
      '	lea	tab2(%rip), %r9',
      '	lea	cls(%rip), %r8',
      '	movzbl	%dil, %esi',
      '	cmpb	$2, (%r8,%rsi)',
      '	ja	other',
      '	movzbl	(%r8,%rsi), %eax',
      '	movslq	(%r9,%rax,4), %rax',
      '	add	%r9, %rax',
      '	jmp	*%rax',
      'k0:	mov	$10, %eax',
      '	ret',
      'k1:	mov	$11, %eax',
      '	ret',
      'k2:	mov	$12, %eax',
      '	ret',
      'other:	xor	%eax, %eax',
      '	ret',
      '	.size	classify, .-classify',
      '	.section	.rodata',
      '	.align	4',
      'tab:	.long	c0-tab, c1-tab, c2-tab',
      'tab2:	.long	k0-tab2, k1-tab2, k2-tab2',
      'cls:	.byte	0, 1, 2, 7, 7, 7, 7, 7',
      '	.data',
      'data:	.long	0, 1, 2, 1, 9',
      '	.section	.note.GNU-stack,"",@progbits',
    ].join('\n') + '\n');
    const exe = join(dir, 'loop-tables');
    execFileSync('gcc', ['-o', exe, path]);
    return exe;
  };
  it('recovers a loop switch whose cases alone lead back to it, as a sample, and a switch guarded by a compare of its index slot, as complete', () => {
    const exe = src();
    const at = nmAddressOf(exe);
    const cfg = analyzeElfFile(exe);
    const byTable = (name: string) => cfg.jumpTables.find((t) => t.tableAddress === at(name));
    // Guessed past the paths nothing known reaches: a sample, never a complete set.
    expect(byTable('tab')?.bounded).toBe(false);
    expect(byTable('tab')?.targets).toEqual([at('c0'), at('c1'), at('c2')]);
    expect(byTable('tab2')?.bounded).toBe(true);
    expect(byTable('tab2')?.targets).toEqual([at('k0'), at('k1'), at('k2')]);
  });
});

describe('a label table whose address is kept in a stack slot', () => {
  // CPython's ceval built as a shared library spills the address of its label table to the frame and
  // reloads it at every dispatch (`mov (%rsp), %rdi; mov (%rdi,%rdx,8), %rdx; jmp *%rdx`). main: the
  // slot is stored once, read back at the dispatch, and on two paths copied round through a register
  // (once under a push, where the same slot is 8(%rsp)). other: on one path the slot holds a
  // pointer the caller passed, so its table cannot be named.
  it('follows the slot back to the lea of the table, through pushes and copies, and not past a store of something else', () => {
    const path = join(dir, 'slot-table.s');
    writeFileSync(path, [
      '	.text',
      '	.globl	main',
      '	.type	main, @function',
      'main:',
      '	push	%rbx',
      '	sub	$16, %rsp',
      '	lea	labels(%rip), %rax',
      '	mov	%rax, (%rsp)',
      '	mov	%rdi, %rbx',
      '	xor	%ecx, %ecx',
      'dispatch:',
      '	mov	(%rsp), %rdi',
      '	mov	%ebx, %edx',
      '	and	$3, %edx',
      '	mov	(%rdi,%rdx,8), %rdx',
      'mjmp:	jmp	*%rdx',
      'L0:	inc	%ecx',
      '	jmp	next',
      'L1:	mov	(%rsp), %r8',
      '	mov	%r8, (%rsp)',
      '	jmp	next',
      'L2:	push	%rcx',
      '	mov	8(%rsp), %r9',
      '	mov	%r9, 8(%rsp)',
      '	pop	%rcx',
      '	jmp	next',
      'L3:	add	$2, %ecx',
      'next:	dec	%rbx',
      '	jnz	dispatch',
      '	mov	%ecx, %eax',
      '	add	$16, %rsp',
      '	pop	%rbx',
      '	ret',
      '	.size	main, .-main',
      '	.globl	other',
      '	.type	other, @function',
      'other:',
      '	sub	$24, %rsp',
      '	lea	labels2(%rip), %rax',
      '	mov	%rax, (%rsp)',
      '	test	%esi, %esi',
      '	je	1f',
      '	mov	%rdx, (%rsp)',
      '1:	mov	(%rsp), %rdi',
      '	mov	%esi, %eax',
      '	and	$1, %eax',
      '	mov	(%rdi,%rax,8), %rax',
      'ojmp:	jmp	*%rax',
      'K0:	mov	$1, %eax',
      '	add	$24, %rsp',
      '	ret',
      'K1:	mov	$2, %eax',
      '	add	$24, %rsp',
      '	ret',
      '	.size	other, .-other',
      '	.section	.data.rel.ro,"aw"',
      '	.align	8',
      'labels:	.quad	L0, L1, L2, L3',
      'labels2:	.quad	K0, K1',
      '	.section	.note.GNU-stack,"",@progbits',
    ].join('\n') + '\n');
    const exe = join(dir, 'slot-table');
    execFileSync('gcc', ['-pie', '-fPIE', '-o', exe, path]);
    const at = nmAddressOf(exe);
    const cfg = analyzeElfFile(exe);
    const main = cfg.jumpTableAt(at('mjmp'));
    expect(main?.source).toBe('table');
    expect(main?.tableAddress).toBe(at('labels'));
    expect(main?.bounded).toBe(true);
    expect(main?.targets).toEqual([at('L0'), at('L1'), at('L2'), at('L3')]);
    const other = cfg.jumpTableAt(at('ojmp'));
    expect(other?.source).toBe('indexed');
    expect(other?.targets).toEqual([]);
    expect(cfg.jumpTables.some((t) => t.tableAddress === at('labels2'))).toBe(false);
  });
});

describe('functions and blocks against objdump', () => {
  it('matches function boundaries and block counts', () => {
    for (const path of [switchPie, switchNoPie, fnptrPie]) {
      const cfg = analyzeElfFile(path);
      const syms = nmSymbols(path);
      for (const name of ['count_bits', 'leaf', 'tail', 'main', 'classify', 'apply', 'direct_only', 'add1']) {
        const sym = syms.get(name);
        if (!sym) continue;
        const [start, size] = sym;
        const f = functionNamed(cfg, name);
        expect(cfg.functionEntry[f]).toBe(start);
        const blocks = Array.from(cfg.blocksOf(f));
        // The function's code ends where the symbol's size says.
        expect(Math.max(...blocks.map((b) => cfg.blockEnd[b]))).toBe(start + size);
        const insns = objdumpRange(path, start, start + size);
        const table = cfg.jumpTables.find((t) => t.jumpAddress >= start && t.jumpAddress < start + size);
        const { reached, leaders } = objdumpBlocks(insns, start, start + size, table ? table.targets : []);
        // Everything but padding is reachable (so a table, if any, was read completely).
        for (const i of insns) if (!reached.has(i.addr)) expect(i.mnemonic, `0x${i.addr.toString(16)} unreached`).toMatch(/nop|xchg|data16|cs|int3/);
        expect(new Set(blocks.map((b) => cfg.blockStart[b])), `${name} in ${path}`).toEqual(leaders);
        let insnCount = 0;
        for (const b of blocks) {
          expect(reached.has(cfg.blockLast[b])).toBe(true);
          insnCount += cfg.blockInsns[b];
          expect(cfg.blockFlags[b] & BlockFlag.LowConfidence).toBe(0);
        }
        expect(insnCount, `${name} instruction count`).toBe(reached.size);
      }
    }
  });

  it('sees a tail call as a tail-call edge, not a call', () => {
    const cfg = analyzeElfFile(switchPie);
    const syms = nmSymbols(switchPie);
    const tail = functionNamed(cfg, 'tail');
    const leaf = syms.get('leaf')![0];
    const kinds = Array.from(cfg.blocksOf(tail)).flatMap((b) => edgesOf(cfg, b));
    expect(kinds).toContainEqual({ kind: EdgeKind.TailCall, target: leaf });
    expect(kinds.some((e) => e.kind === EdgeKind.Call)).toBe(false);
    // leaf's blocks belong to leaf, not to tail.
    expect(cfg.blockFunction[cfg.blockStartingAt(leaf)]).toBe(functionNamed(cfg, 'leaf'));
  });
});

describe('address-taken functions', () => {
  for (const [label, get] of [
    ['PIE', () => fnptrPie],
    ['non-PIE', () => fnptrNoPie],
  ] as const) {
    it(`contains exactly the functions whose address is taken (${label})`, () => {
      const path = get();
      const cfg = analyzeElfFile(path);
      const syms = nmSymbols(path);
      const user = ['add1', 'sub1', 'twice', 'direct_only', 'apply'];
      const taken = user.filter((n) => cfg.isAddressTaken(syms.get(n)![0]));
      expect(taken.sort()).toEqual(['add1', 'sub1', 'twice']);
      // main is passed to __libc_start_main by _start.
      expect(cfg.isAddressTaken(syms.get('main')![0])).toBe(true);
      // apply calls through the pointer.
      const apply = functionNamed(cfg, 'apply');
      const edges = Array.from(cfg.blocksOf(apply)).flatMap((b) => edgesOf(cfg, b));
      expect(edges.some((e) => e.kind === EdgeKind.IndirectCall || e.kind === EdgeKind.IndirectJump)).toBe(true);
    });
  }
});

describe('PLT and imports', () => {
  it('names the PLT stubs of a dynamic program and calls reach them', () => {
    const cfg = analyzeElfFile(switchPie);
    const names = cfg.plt.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['puts', 'printf']));
    // readelf's view: every JUMP_SLOT relocation has a stub.
    const relocs = execFileSync('readelf', ['-rW', switchPie], { encoding: 'utf8' });
    const slots = [...relocs.matchAll(/R_X86_64_JUMP_SLOT\s+\S+\s+(\S+?)(@|\s)/g)].map((m) => m[1]);
    expect(slots.length).toBeGreaterThan(0);
    for (const s of slots) expect(names).toContain(s);
    // main's calls to puts go to the puts stub.
    const main = functionNamed(cfg, 'main');
    const callees = Array.from(cfg.blocksOf(main))
      .flatMap((b) => edgesOf(cfg, b))
      .filter((e) => e.kind === EdgeKind.Call || e.kind === EdgeKind.TailCall)
      .map((e) => cfg.pltAt(e.target)?.name ?? cfg.functionName[cfg.functionIndex(e.target)]);
    expect(callees).toEqual(expect.arrayContaining(['puts', 'printf', 'classify']));
    const stub = cfg.plt.find((p) => p.name === 'puts')!;
    expect(cfg.functionName[cfg.functionIndex(stub.address)]).toBe('puts@plt');
  });

  it('resolves a static program: calls go straight to libc functions, PLT only for ifuncs', () => {
    const cfg = analyzeElfFile(staticProg);
    const syms = nmSymbols(staticProg);
    const main = functionNamed(cfg, 'main');
    const callTargets = Array.from(cfg.blocksOf(main))
      .flatMap((b) => edgesOf(cfg, b))
      .filter((e) => e.kind === EdgeKind.Call || e.kind === EdgeKind.TailCall)
      .map((e) => e.target);
    expect(callTargets).toContain(syms.get('puts')![0]);
    expect(callTargets).toContain(syms.get('classify')![0]);
    // Static PLT stubs only serve IRELATIVE (ifunc) slots: named after an ifunc symbol.
    const nm = execFileSync('nm', [staticProg], { encoding: 'utf8' });
    const ifuncs = new Set([...nm.matchAll(/^[0-9a-f]+ i (\S+)$/gm)].map((m) => m[1]));
    expect(cfg.plt.length).toBeGreaterThan(0);
    for (const p of cfg.plt) expect(ifuncs.has(p.name), p.name).toBe(true);
  });
});

describe('model services', () => {
  it('blockAt finds every block from its first and last instruction, and nothing outside', () => {
    const cfg = analyzeElfFile(switchPie);
    for (let b = 0; b < cfg.blockCount; b++) {
      expect(cfg.blockAt(cfg.blockStart[b])).toBe(b);
      expect(cfg.blockAt(cfg.blockLast[b])).toBe(b);
    }
    expect(cfg.blockAt(0)).toBe(-1);
    expect(cfg.blockAt(cfg.linkEnd + 0x1000)).toBe(-1);
    // Return sites: each follows a call.
    for (const r of cfg.returnSites) {
      const b = cfg.blockAt(r - 1);
      if (b >= 0) expect([2, 3, 4].includes(cfg.blockEndKind[b]) || cfg.blockEnd[b] <= r).toBe(true);
    }
  });

  it('merges execution counts into coverage', () => {
    const cfg = analyzeElfFile(switchPie);
    const cov = new BlockCoverage(cfg);
    const f = functionNamed(cfg, 'count_bits');
    const blocks = cfg.blocksOf(f);
    cov.add(cfg.blockStart[blocks[0]], 3);
    cov.add(cfg.blockLast[blocks[1]]);
    cov.add(0);
    expect(cov.counts[blocks[0]]).toBe(3);
    expect(cov.counts[blocks[1]]).toBe(1);
    expect(cov.outside).toBe(1);
    expect(cov.functionCoverage(f)).toEqual({ ran: 2, total: blocks.length });
    expect(cov.neverRan().length).toBe(cfg.blockCount - 2);
  });

  it('round-trips through JSON and refuses other versions', () => {
    const cfg = analyzeElfFile(switchPie);
    const doc = JSON.parse(JSON.stringify(cfgToJson(cfg)));
    const back = cfgFromJson(doc);
    expect(back.summary()).toEqual(cfg.summary());
    expect(Array.from(back.blockStart)).toEqual(Array.from(cfg.blockStart));
    expect(Array.from(back.edgeTarget)).toEqual(Array.from(cfg.edgeTarget));
    expect(back.functionName).toEqual(cfg.functionName);
    expect(back.plt).toEqual(cfg.plt);
    expect(back.jumpTables).toEqual(cfg.jumpTables);
    for (let b = 0; b < cfg.blockCount; b += 7) expect(back.blockAt(cfg.blockLast[b])).toBe(b);
    expect(() => cfgFromJson({ ...doc, version: CFG_JSON_VERSION + 1 })).toThrow(/version/);
    expect(() => cfgFromJson({ ...doc, format: 'other' })).toThrow(/format/);
  });
});

const LIBC = '/lib/x86_64-linux-gnu/libc.so.6';

describe.runIf(existsSync(LIBC))('a process: program + libc', () => {
  it('maps modules at bases, resolves PLT stubs into libc and symbolizes', () => {
    const t0 = performance.now();
    const libc = analyzeElfFile(LIBC);
    const millis = performance.now() - t0;
    console.log(`libc: ${Math.round(millis)} ms`, JSON.stringify(libc.summary()));
    expect(libc.functionCount).toBeGreaterThan(2000);
    expect(libc.jumpTables.filter((t) => t.bounded).length).toBeGreaterThan(20);
    const prog = analyzeElfFile(switchPie);
    const map = new ProcessMap();
    const exe = map.add(prog, 0x555555554000);
    const lib = map.add(libc, 0x7ffff7dc0000);
    const putsStub = prog.plt.find((p) => p.name === 'puts')!.address + exe.bias;
    const putsLibc = nmSymbols(LIBC, true).get('puts')![0];
    expect(map.pltTarget(putsStub)).toBe(putsLibc + lib.bias);
    expect(map.moduleAt(putsLibc + lib.bias)).toBe(lib);
    expect(map.symbolize(putsLibc + lib.bias)).toMatch(/^libc\.so\.6!(_IO_)?puts$/);
    expect(map.symbolize(putsStub)).toBe(`switch-pie!puts@plt`);
    // Exported libc functions are allowed indirect targets; a return site is call-preceded.
    expect(map.isAllowedIndirectTarget(putsLibc + lib.bias)).toBe(true);
    expect(map.isAllowedIndirectTarget(putsLibc + lib.bias + 1)).toBe(false);
    expect(map.isReturnSite(libc.returnSites[0] + lib.bias)).toBe(true);
    const b = map.blockAt(putsLibc + lib.bias);
    expect(map.moduleOfBlock(b)).toBe(lib);
    expect(b - lib.blockOffset).toBe(libc.blockStartingAt(putsLibc));
    const cross = map.crossModuleEdges().filter((e) => e.from === exe);
    expect(cross.find((e) => e.name === 'printf')?.to).toBe(lib);
    const again = processFromJson(JSON.parse(JSON.stringify(processToJson(map))));
    expect(again.pltTarget(putsStub)).toBe(putsLibc + lib.bias);
  });
});
