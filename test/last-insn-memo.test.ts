import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/packets/errors.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { defaultConfig } from '../src/packets/config.js';
import { Asid } from '../src/flow/address-space.js';
import { Block, BlockDecoder } from '../src/flow/block-decoder.js';
import { forEachDecoded } from './helpers/insn-loop.js';
import { Image } from '../src/flow/image.js';
import { ExecMode, InsnClass, InstructionInfo } from '../src/flow/instruction.js';
import { LastInsnMemo, lastClass, lastIsDirect, lastSize } from '../src/flow/last-insn-memo.js';

const REAL = join(__dirname, '..', '..', 'shared', 'traces', 'real', 'mruby');

/** What `block.lastInsn` gives, packed as the memo packs it (or its error). */
const scratch = new InstructionInfo();

function direct(block: Block): { status: number; iclass: number; isDirect: boolean; size: number } {
  const insn = scratch;
  const status = block.lastInsn(insn);
  return { status, iclass: insn.iclass, isDirect: insn.isDirect, size: insn.size };
}

function viaMemo(memo: LastInsnMemo, block: Block): { status: number; iclass: number; isDirect: boolean; size: number } {
  const info = memo.read(block, scratch);
  if (info < 0) return { status: info, iclass: scratch.iclass, isDirect: scratch.isDirect, size: scratch.size };
  return { status: 0, iclass: lastClass(info), isDirect: lastIsDirect(info), size: lastSize(info) };
}

/** A one-instruction block ending at `endIp`, read from `image` in `asid`. */
function blockAt(image: Image, endIp: number, asid?: Asid): Block {
  const b = new Block();
  b.begin(image, asid ?? new Asid());
  b.ip = endIp;
  b.endIp = endIp;
  b.mode = ExecMode.Bit64;
  b.ninsn = 1;
  return b;
}

describe('LastInsnMemo', () => {
  it.skipIf(!existsSync(join(REAL, 'trace.pt')))('gives what lastInsn gives for every block of the real mruby trace, mostly from memory', () => {
    const trace = new Uint8Array(readFileSync(join(REAL, 'trace.pt')));
    const image = new Image();
    image.addMemory('seg', new Uint8Array(readFileSync(join(REAL, 'seg_400000.bin'))), 0x400000);
    const config = defaultConfig();
    const dec = new BlockDecoder(new PacketDecoder(trace, { skd007: false }), config, image, { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false, endOnCall: true, endOnJump: true });
    const memo = new LastInsnMemo();
    let blocks = 0;
    forEachDecoded(dec, new Block(), 'mruby', (block) => {
      if (block.ninsn === 0) return;
      blocks++;
      const want = direct(block);
      const got = viaMemo(memo, block);
      if (got.status !== want.status || got.iclass !== want.iclass || got.isDirect !== want.isDirect || got.size !== want.size) {
        expect({ at: block.endIp, got }).toEqual({ at: block.endIp, got: want });
      }
    });
    expect(blocks).toBeGreaterThan(100_000);
    // A loop's blocks end at the same few addresses: nearly all are answered from memory.
    expect(memo.misses).toBeGreaterThan(0);
    expect(memo.misses).toBeLessThan(blocks / 20);
  });

  it('forgets its entries when the image changes under the same address', () => {
    const image = new Image();
    const call = new Uint8Array([0xe8, 0x10, 0x00, 0x00, 0x00]); // call rel32
    const ret = new Uint8Array([0xc3, 0x90, 0x90, 0x90, 0x90]); // ret
    const section = image.addMemory('code', call, 0x1000);
    expect(section).toBe(0);
    const memo = new LastInsnMemo();
    const asid = new Asid();
    expect(viaMemo(memo, blockAt(image, 0x1000, asid))).toEqual({ status: 0, iclass: InsnClass.Call, isDirect: true, size: 5 });
    // The same image changed in place (its version moves on).
    image.addMemory('patched', ret, 0x1000);
    expect(viaMemo(memo, blockAt(image, 0x1000, asid))).toEqual({ status: 0, iclass: InsnClass.Return, isDirect: false, size: 1 });
    // Two images of as many changes (rewritten code has one image per version).
    const before = new Image();
    before.addMemory('code', call, 0x1000);
    const after = new Image();
    after.addMemory('code', ret, 0x1000);
    expect(after.version).toBe(before.version);
    expect(viaMemo(memo, blockAt(before, 0x1000, asid))).toEqual({ status: 0, iclass: InsnClass.Call, isDirect: true, size: 5 });
    expect(viaMemo(memo, blockAt(after, 0x1000, asid))).toEqual({ status: 0, iclass: InsnClass.Return, isDirect: false, size: 1 });
    // Another address space.
    const asid1 = new Asid(0x4000);
    const asid2 = new Asid(0x5000);
    const spaces = new Image();
    spaces.addMemory('one', call, 0x1000, asid1);
    spaces.addMemory('two', ret, 0x1000, asid2);
    expect(viaMemo(memo, blockAt(spaces, 0x1000, asid1))).toEqual({ status: 0, iclass: InsnClass.Call, isDirect: true, size: 5 });
    expect(viaMemo(memo, blockAt(spaces, 0x1000, asid2))).toEqual({ status: 0, iclass: InsnClass.Return, isDirect: false, size: 1 });
  });

  it('keeps entries apart by execution mode, and passes errors through', () => {
    const image = new Image();
    // 48 05 ...: add rax, imm32 in 64-bit mode; dec eax then add eax, imm32 in 32-bit mode.
    image.addMemory('code', new Uint8Array([0x48, 0x05, 1, 0, 0, 0, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90]), 0x2000);
    const memo = new LastInsnMemo();
    const asid = new Asid();
    const b64 = blockAt(image, 0x2000, asid);
    expect(viaMemo(memo, b64)).toEqual(direct(b64));
    const b32 = blockAt(image, 0x2000, asid);
    b32.mode = ExecMode.Bit32;
    expect(viaMemo(memo, b32)).toEqual(direct(b32));
    expect(viaMemo(memo, b32).size).not.toBe(viaMemo(memo, b64).size);
    // No code mapped there.
    const missing = blockAt(image, 0x9000, asid);
    expect(viaMemo(memo, missing).status).toBe(-ErrorCode.NoMap);
  });
});
