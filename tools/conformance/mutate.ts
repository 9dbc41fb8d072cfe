/**
 * Mutations of a valid trace, for differential tests: random byte flips,
 * a cut (the trace ends early, or starts late), a dropped PSB (its 16 bytes
 * removed), a duplicated stretch. Each mutant gets one to three of them.
 */
import type { Rng } from '../../bench/synthetic-trace.js';

const PSB = [0x02, 0x82];

/** Offsets of the PSBs in `bytes`. */
function psbOffsets(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i + 16 <= bytes.length; i++) {
    let ok = true;
    for (let k = 0; k < 16 && ok; k++) ok = bytes[i + k] === PSB[k % 2];
    if (ok) {
      out.push(i);
      i += 15;
    }
  }
  return out;
}

export function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let bytes = input.slice();
  const n = 1 + rng.int(3);
  for (let m = 0; m < n; m++) {
    const kind = rng.int(4);
    if (kind === 0 && bytes.length > 0) {
      // Flip a few bytes (a bit, or a whole byte).
      for (let k = 1 + rng.int(4); k > 0; k--) {
        const at = rng.int(bytes.length);
        bytes[at] = rng.chance(0.5) ? bytes[at]! ^ (1 << rng.int(8)) : rng.bits(8);
      }
    } else if (kind === 1 && bytes.length > 32) {
      // Cut the end, or the start.
      const at = 16 + rng.int(bytes.length - 16);
      bytes = rng.chance(0.7) ? bytes.slice(0, at) : bytes.slice(at - 16);
    } else if (kind === 2) {
      const psbs = psbOffsets(bytes);
      if (psbs.length === 0) continue;
      const at = psbs[rng.int(psbs.length)]!;
      const out = new Uint8Array(bytes.length - 16);
      out.set(bytes.subarray(0, at));
      out.set(bytes.subarray(at + 16), at);
      bytes = out;
    } else if (bytes.length > 8) {
      // Duplicate a stretch of up to 32 bytes.
      const from = rng.int(bytes.length);
      const len = Math.min(1 + rng.int(32), bytes.length - from);
      const at = rng.int(bytes.length);
      const out = new Uint8Array(bytes.length + len);
      out.set(bytes.subarray(0, at));
      out.set(bytes.subarray(from, from + len), at);
      out.set(bytes.subarray(at), at + len);
      bytes = out;
    }
  }
  return bytes;
}
