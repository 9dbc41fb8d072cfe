/**
 * What a system call writes to user memory, as reverse execution and the
 * taint use it: by number and arguments; stdio's terminal queries (ioctl)
 * by request; nothing for a call that failed.
 */
import { describe, expect, it } from 'vitest';
import { syscallWrites } from '../src/analyses/crash/syscall-effects.js';

const regs = (m: Record<number, bigint>) => (r: number): bigint | null => m[r] ?? null;
const RSI = 6;
const RDX = 2;
const ENOTTY = -25n & 0xffffffffffffffffn;

describe('syscall effects', () => {
  it('read writes count bytes at buf; an unknown buffer may be anywhere', () => {
    expect(syscallWrites(0n, regs({ [RSI]: 0x1000n, [RDX]: 64n }), 10n)).toEqual({ name: 'read', addr: 0x1000, n: 64 });
    expect(syscallWrites(0n, regs({ [RDX]: 64n }))).toBe('anywhere');
    expect(syscallWrites(null, regs({}))).toBe('anywhere');
  });

  it('a call that failed wrote nothing, even when its buffer is unknown', () => {
    expect(syscallWrites(0n, regs({ [RDX]: 64n }), ENOTTY)).toBeNull();
    expect(syscallWrites(16n, regs({ [RSI]: 0x5401n }), ENOTTY)).toBeNull();
  });

  it("ioctl: stdio's terminal queries write their struct; other requests may write anywhere", () => {
    expect(syscallWrites(16n, regs({ [RSI]: 0x5401n, [RDX]: 0x2000n }), 0n)).toEqual({ name: 'ioctl TCGETS', addr: 0x2000, n: 36 });
    expect(syscallWrites(16n, regs({ [RSI]: 0x5413n, [RDX]: 0x2000n }), 0n)).toEqual({ name: 'ioctl TIOCGWINSZ', addr: 0x2000, n: 8 });
    expect(syscallWrites(16n, regs({ [RSI]: 0x5401n }), 0n)).toBe('anywhere');
    expect(syscallWrites(16n, regs({ [RSI]: 0xc0105500n, [RDX]: 0x2000n }), ENOTTY)).toBe('anywhere');
  });
});
