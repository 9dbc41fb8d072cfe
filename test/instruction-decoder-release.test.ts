/**
 * iced-x86 keeps its decoders in WASM memory, which JS garbage collection
 * does not free and which never shrinks. An instruction decoder per image
 * must give that memory back when the image is done with, or a process that
 * opens many images (a fleet worker, one image per job) grows by the size
 * of its code per image.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ANY_ASID } from '../src/flow/address-space.js';
import { Image } from '../src/flow/image.js';
import { InsnClass, InstructionInfo, ExecMode } from '../src/flow/instruction.js';
import { InstructionDecoder, instructionDecoderFor, releaseInstructionDecoder } from '../src/flow/instruction-decoder.js';

/** 1 MiB of `nop` with a `ret` at the end. */
const code = new Uint8Array(1 << 20).fill(0x90);
code[code.length - 1] = 0xc3;

/** A new image of {@link code} at 0x400000: a new source, so a new decoder window. */
function bigImage(): Image {
  const image = new Image();
  image.addMemory('code', code, 0x400000);
  return image;
}

/** Decode at both ends of the image (one window of the source each). */
function decodeEnds(dec: InstructionDecoder): void {
  const out = new InstructionInfo();
  expect(dec.decode(out, 0x400000, ExecMode.Bit64, ANY_ASID)).toBe(0);
  expect(out.size).toBe(1);
  expect(dec.decode(out, 0x400000 + (1 << 20) - 1, ExecMode.Bit64, ANY_ASID)).toBe(0);
  expect(out.iclass).toBe(InsnClass.Return);
  // The printing path keeps a formatter, which is released too.
  expect(dec.disassemble(out)).toBe('ret');
}

describe('instruction decoder WASM memory', () => {
  it('stays flat over many images that are released', () => {
    // Warm up: the first decoder sizes iced's heap.
    for (let i = 0; i < 4; i++) {
      const image = bigImage();
      decodeEnds(instructionDecoderFor(image));
      releaseInstructionDecoder(image);
    }
    const before = process.memoryUsage().external;
    for (let i = 0; i < 120; i++) {
      const image = bigImage();
      decodeEnds(instructionDecoderFor(image));
      releaseInstructionDecoder(image);
    }
    // Unreleased, each image keeps a 1 MiB window: 120 MiB more.
    const grown = process.memoryUsage().external - before;
    expect(grown).toBeLessThan(48 * 2 ** 20);
  });

  it('is freed when a decoder that was never released is collected', () => {
    // A process of its own, for --expose-gc: images dropped without a
    // release; the registry frees their decoders' WASM memory once they
    // are collected, which happens between turns of the event loop.
    const dist = (...p: string[]) => JSON.stringify(join(__dirname, '..', 'dist', 'src', 'flow', ...p));
    const script = `
      const { Image } = await import(${dist('image.js')});
      const { instructionDecoderFor } = await import(${dist('instruction-decoder.js')});
      const { InstructionInfo } = await import(${dist('instruction.js')});
      const { ANY_ASID } = await import(${dist('address-space.js')});
      const code = new Uint8Array(1 << 20).fill(0x90);
      const out = new InstructionInfo();
      const once = () => {
        const image = new Image();
        image.addMemory('code', code, 0x400000);
        if (instructionDecoderFor(image).decode(out, 0x400000, 3, ANY_ASID) !== 0) throw new Error('decode failed');
      };
      const settle = async () => { for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 0)); } };
      for (let i = 0; i < 4; i++) once();
      await settle();
      const before = process.memoryUsage().external;
      for (let i = 0; i < 120; i++) { once(); if (i % 10 === 9) await settle(); }
      await settle();
      console.log(process.memoryUsage().external - before);
    `;
    const grown = Number(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' }).trim());
    expect(grown).toBeLessThan(48 * 2 ** 20);
  });

  it('makes a new decoder for an image after a release, and dispose twice is harmless', () => {
    const image = bigImage();
    const first = instructionDecoderFor(image);
    decodeEnds(first);
    releaseInstructionDecoder(image);
    releaseInstructionDecoder(image);
    const second = instructionDecoderFor(image);
    expect(second).not.toBe(first);
    decodeEnds(second);
    second.dispose();
    second.dispose();
  });
});
