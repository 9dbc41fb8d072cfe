/**
 * Reverse execution and 32-bit registers: a write of a register's 32-bit
 * part zeroes its upper half (SDM Vol. 1, 3.4.1.1), so where the last
 * writer of a register was such a write, its low 32 bits (from a 32-bit
 * store read back from memory, or a 32-bit operation undone) give the
 * whole register. The loop is -O0 code for `buf[i++] = c` with an `int i`
 * kept on the stack, the shape of a byte-by-byte overflow whose stores'
 * addresses the crash analysis must recover. The core is made up: its
 * registers and memory at the end of the loop.
 */
import { describe, expect, it } from 'vitest';
import { decodeFacts, type InsnFacts } from '../src/analyses/crash/instruction-facts.js';
import { ReverseExecution } from '../src/analyses/crash/reverse-execution.js';
import type { CoreFile } from '../src/sources/core-file.js';

const RAX = 0;
const RDX = 2;
const RBP = 0x7000;

/** mov eax,[rbp-4]; lea edx,[rax+1] (or lea rdx,[rax+1]); mov [rbp-4],edx; cdqe; mov [rbp+rax-20h],cl */
function loop(iterations: number, wideLea: boolean): (InsnFacts | null)[] {
  const body: number[][] = [[0x8b, 0x45, 0xfc], wideLea ? [0x48, 0x8d, 0x50, 0x01] : [0x8d, 0x50, 0x01], [0x89, 0x55, 0xfc], [0x48, 0x98], [0x88, 0x4c, 0x05, 0xe0]];
  const facts: (InsnFacts | null)[] = [];
  for (let k = 0; k < iterations; k++) {
    let ip = 0x401000;
    for (const bytes of body) {
      const f = decodeFacts(ip, Uint8Array.from(bytes));
      expect(f).not.toBeNull();
      facts.push(f);
      ip += bytes.length;
    }
  }
  return facts;
}

/** A core at the loop's end: i = `i` at [rbp-4], the registers as the last iteration left them. */
function core(i: number): CoreFile {
  const regs = new Map<string, bigint>([['rax', BigInt(i - 1)], ['rdx', BigInt(i)], ['rcx', 0x4dn], ['rbp', BigInt(RBP)], ['rsp', BigInt(RBP - 0x20)], ['fs_base', 0n]]);
  const mem = new Map<number, number>();
  for (let b = 0; b < 4; b++) mem.set(RBP - 4 + b, (i >> (8 * b)) & 0xff);
  for (let k = 0; k < i; k++) mem.set(RBP - 0x20 + k, 0x4d);
  const fake = {
    reg: (name: string): bigint => regs.get(name) ?? 0n,
    byte: (addr: number): number => mem.get(addr) ?? -1,
    read: (addr: number, size: number): bigint | null => {
      let v = 0n;
      for (let b = size - 1; b >= 0; b--) {
        const x = mem.get(addr + b);
        if (x === undefined) return null;
        v = (v << 8n) | BigInt(x);
      }
      return v;
    },
  };
  return fake as unknown as CoreFile;
}

describe('reverse execution through 32-bit registers', () => {
  it('recovers every byte store of `buf[i++] = c` from the final i alone', () => {
    const n = 6;
    const facts = loop(n, false);
    const rev = new ReverseExecution(facts, core(n));
    rev.run();
    for (let k = 0; k < n; k++) {
      // Iteration k: i was k when loaded, k + 1 after the lea, and the byte went to buf[k].
      expect(rev.reg(k * 5 + 1, RAX), `iteration ${k}: eax loaded`).toBe(BigInt(k));
      expect(rev.reg(k * 5 + 2, RDX), `iteration ${k}: edx = i + 1`).toBe(BigInt(k + 1));
      expect(rev.addr[k * 5 + 4], `iteration ${k}: the byte store's address`).toBe(RBP - 0x20 + k);
    }
    expect(rev.unresolvedStores()).toEqual([]);
    expect(rev.conflicts).toBe(0);
  });

  it('does not take the low 32 bits for the register where a 64-bit write came last', () => {
    // lea rdx,[rax+1] writes all of rdx: the 32-bit store of edx tells only its low half.
    const n = 6;
    const facts = loop(n, true);
    const rev = new ReverseExecution(facts, core(n));
    rev.run();
    // Only the last iteration's registers come from the core itself.
    for (let k = 0; k < n - 1; k++) {
      expect(rev.reg(k * 5 + 2, RDX), `iteration ${k}: rdx`).toBeNull();
      expect(Number.isNaN(rev.addr[k * 5 + 4]!), `iteration ${k}: the byte store's address`).toBe(true);
    }
    expect(rev.conflicts).toBe(0);
  });
});
