import { CliError } from './output.js';

/**
 * Parse an unsigned integer the way libipt's tools do (strtoull base 0:
 * 0x hex, leading-0 octal, else decimal); the whole text must be a number.
 */
export function parseCNumber(text: string | undefined, option: string, max = Number.MAX_SAFE_INTEGER): number {
  if (text === undefined || text === '' || text.startsWith('--')) {
    throw new CliError(`${option}: missing argument.`);
  }
  let value: number;
  const t = text.trim();
  if (/^0[xX][0-9a-fA-F]+$/.test(t)) value = parseInt(t.slice(2), 16);
  else if (/^0[0-7]*$/.test(t)) value = t.length > 1 ? parseInt(t.slice(1), 8) : 0;
  else if (/^[1-9][0-9]*$/.test(t)) value = parseInt(t, 10);
  else throw new CliError(`${option}: bad argument: ${text}.`);
  if (!Number.isSafeInteger(value)) throw new CliError(`${option}: value too big: ${text}.`);
  if (value > max) throw new CliError(`${option}: value too big: ${text}.`);
  return value;
}

/** Like {@link parseCNumber} but exact for full 64-bit values. */
export function parseCBigInt(text: string | undefined, option: string): bigint {
  if (text === undefined || text === '' || text.startsWith('--')) {
    throw new CliError(`${option}: missing argument.`);
  }
  const t = text.trim();
  let value: bigint;
  if (/^0[xX][0-9a-fA-F]+$/.test(t)) value = BigInt(t);
  else if (/^0[0-7]*$/.test(t)) value = t.length > 1 ? BigInt('0o' + t.slice(1)) : 0n;
  else if (/^[1-9][0-9]*$/.test(t)) value = BigInt(t);
  else throw new CliError(`${option}: bad argument: ${text}.`);
  if (value >= 1n << 64n) throw new CliError(`${option}: value too big: ${text}.`);
  return value;
}

/**
 * Split `file[:from[-to]]` as ptdump does: the suffix is a range only if it
 * parses as one, otherwise the colon belongs to the file name.
 */
export function splitFileRange(arg: string): { path: string; from: number; to?: number } {
  const colon = arg.lastIndexOf(':');
  if (colon < 0) return { path: arg, from: 0 };
  const range = arg.slice(colon + 1);
  const m = /^([^-]+)(?:-(.+))?$/.exec(range);
  if (!m) return { path: arg, from: 0 };
  const num = (s: string): number | null => {
    try {
      return parseCNumber(s, 'range');
    } catch {
      return null;
    }
  };
  const from = num(m[1]);
  if (from === null) return { path: arg, from: 0 };
  if (m[2] === undefined) return { path: arg.slice(0, colon), from };
  const to = num(m[2]);
  if (to === null) return { path: arg, from: 0 };
  if (to <= from) throw new CliError(`bad file ${arg}: invalid argument.`);
  return { path: arg.slice(0, colon), from, to };
}

/** The value given to `option` at `args[i]`; a missing or empty one is a one-line usage error. */
export function optionValue(args: readonly string[], i: number, option: string): string {
  const v = args[i];
  if (v === undefined || v === '') throw new CliError(`${option}: missing argument.`);
  return v;
}
