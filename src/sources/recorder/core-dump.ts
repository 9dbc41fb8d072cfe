/**
 * The registers of a program that qemu-user killed with a fault: qemu
 * writes an ELF core file (`qemu_<prog>_<date>_<pid>.core`) into the
 * guest's working directory when RLIMIT_CORE allows. Its NT_PRSTATUS note
 * holds the signal and the x86-64 general registers (Linux
 * `struct elf_prstatus`: 112 bytes of header, then `user_regs_struct`, in
 * which RIP is the 17th 8-byte register).
 */
import { copyFileSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ipFromHiLo } from '../../flow/address-space.js';

const PT_NOTE = 4;
const NT_PRSTATUS = 1;
const PR_REG_OFFSET = 112;
const RIP_INDEX = 16;

export interface CoreState {
  signal: number;
  rip: number;
}

/** Parse the first NT_PRSTATUS of an x86-64 ELF core, or null. */
export function parseCore(bytes: Buffer): CoreState | null {
  if (bytes.length < 64 || bytes.readUInt32BE(0) !== 0x7f454c46 || bytes[4] !== 2) return null;
  const phoff = Number(bytes.readBigUInt64LE(32));
  const phentsize = bytes.readUInt16LE(54);
  const phnum = bytes.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > bytes.length || bytes.readUInt32LE(ph) !== PT_NOTE) continue;
    const off = Number(bytes.readBigUInt64LE(ph + 8));
    const size = Number(bytes.readBigUInt64LE(ph + 32));
    let p = off;
    while (p + 12 <= off + size && p + 12 <= bytes.length) {
      const namesz = bytes.readUInt32LE(p);
      const descsz = bytes.readUInt32LE(p + 4);
      const type = bytes.readUInt32LE(p + 8);
      const desc = p + 12 + ((namesz + 3) & ~3);
      if (type === NT_PRSTATUS && desc + PR_REG_OFFSET + (RIP_INDEX + 1) * 8 <= bytes.length) {
        const r = desc + PR_REG_OFFSET + RIP_INDEX * 8;
        return { signal: bytes.readInt32LE(desc), rip: ipFromHiLo(bytes.readUInt32LE(r + 4), bytes.readUInt32LE(r)) };
      }
      p = desc + ((descsz + 3) & ~3);
    }
  }
  return null;
}

/** Find, parse and delete qemu's core file in `dir`. */
export function takeQemuCore(dir: string, keepAs?: string): CoreState | null {
  let state: CoreState | null = null;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('qemu_') || !name.endsWith('.core')) continue;
    const path = join(dir, name);
    try {
      if (state === null) {
        state = parseCore(readFileSync(path));
        // The crash analysis needs the whole core (registers and memory).
        if (keepAs !== undefined && state !== null) copyFileSync(path, keepAs);
      }
    } finally {
      rmSync(path, { force: true });
    }
  }
  return state;
}
