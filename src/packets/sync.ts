import { ErrorCode } from './errors.js';

/** Size of a PSB packet: 02 82 repeated eight times (SDM "PSB Packet"). */
export const PSB_SIZE = 16;

/** True if a complete, valid PSB starts at `pos`. */
export function isPsbAt(buf: Uint8Array, pos: number, end: number): boolean {
  if (pos < 0 || pos + PSB_SIZE > end) return false;
  for (let i = 0; i < PSB_SIZE; i += 2) {
    if (buf[pos + i] !== 0x02 || buf[pos + i + 1] !== 0x82) return false;
  }
  return true;
}

/** True if the aligned 8 bytes at `pos` are all PSB payload pattern. */
function isPatternWord(buf: Uint8Array, pos: number): boolean {
  const a = buf[pos];
  const b = buf[pos + 1];
  if (!((a === 0x02 && b === 0x82) || (a === 0x82 && b === 0x02))) return false;
  return (
    buf[pos + 2] === a && buf[pos + 3] === b &&
    buf[pos + 4] === a && buf[pos + 5] === b &&
    buf[pos + 6] === a && buf[pos + 7] === b
  );
}

/**
 * Given a position inside a run of PSB pattern, find the PSB that ends
 * where the run ends, as libipt does: a run of several PSBs yields the last.
 * Returns its position or -1.
 */
function findPsb(buf: Uint8Array, pos: number, end: number): number {
  // PSB is an extended opcode: step onto a 02 byte so that we do not pair a
  // following packet's ext opcode with this PSB.
  if (buf[pos] !== 0x02) pos++;
  while (pos + 1 < end && buf[pos] === 0x02 && buf[pos + 1] === 0x82) pos += 2;
  pos -= PSB_SIZE;
  if (pos < 0) return -1;
  return isPsbAt(buf, pos, end) ? pos : -1;
}

/**
 * Find the next PSB at or after `start`. The scan reads 8-byte words aligned
 * to the buffer start (a full PSB always contains one), which matches
 * libipt's resync points exactly.
 */
export function syncForward(buf: Uint8Array, start: number, end: number): number {
  if (start < 0 || start > end) return -ErrorCode.Internal;
  let pos = start + ((8 - (start % 8)) % 8);
  for (;;) {
    const current = pos;
    pos += 8;
    if (end < pos) return -ErrorCode.Eos;
    if (!isPatternWord(buf, current)) continue;
    const psb = findPsb(buf, current, end);
    if (psb < 0 || psb < start) continue;
    return psb;
  }
}

/** Find the closest PSB that starts before `start`. */
export function syncBackward(buf: Uint8Array, start: number, end: number): number {
  if (start < 0 || start > end) return -ErrorCode.Internal;
  let pos = start - (start % 8);
  for (;;) {
    pos -= 8;
    if (pos < 0) return -ErrorCode.Eos;
    if (!isPatternWord(buf, pos)) continue;
    const psb = findPsb(buf, pos, end);
    if (psb < 0) continue;
    return psb;
  }
}
