import { readFileSync } from 'node:fs';
import { ErrorCode } from './errors.js';

/**
 * The processor a trace was recorded on, as libipt's `pt_cpu`. Errata are
 * chosen by family and model; `vendor: 'unknown'` means "decode by the
 * specification" (ptdump/ptxed `--cpu none`, the default).
 */
export interface Cpu {
  vendor: 'intel' | 'unknown';
  family: number;
  model: number;
  stepping: number;
}

/**
 * Intel PT errata the decoders work around (libipt's `pt_errata`). Each is
 * named after the errata-sheet entry that documents it.
 */
export interface Errata {
  /** BDM70: PSB+ may hold a FUP (and MODE.EXEC) right before a TIP.PGE. */
  bdm70: boolean;
  /** BDM64: a TSX abort may report an incorrect TIP / TNT bit. */
  bdm64: boolean;
  /** SKD007: after a buffer overflow, a CYC may hide an OVF (the packet decoder checks). */
  skd007: boolean;
  /** SKD022: a VM entry that clears TraceEn may generate a FUP. */
  skd022: boolean;
  /** SKD010: an OVF may be followed by a dropped FUP / TIP.PGE. */
  skd010: boolean;
  /** SKL014: a TIP.PGD may lack its IP under address filtering. */
  skl014: boolean;
  /** APL12: an OVF may be followed by a FUP while tracing is disabled. */
  apl12: boolean;
  /** APL11: an OVF may be followed by a TIP.PGD. */
  apl11: boolean;
  /** SKL168: a CYC (and its MTC) may be dropped right before a PSB. */
  skl168: boolean;
  /** SKZ84: TSC scaling/offsetting in a VMX guest corrupts TMA (and adds a bogus byte). */
  skz84: boolean;
}

/** All errata off: decode by the specification. */
export function noErrata(): Errata {
  return {
    bdm70: false, bdm64: false, skd007: false, skd022: false, skd010: false,
    skl014: false, apl12: false, apl11: false, skl168: false, skz84: false,
  };
}

/** `--cpu none`: no CPU, no errata. */
export function noCpu(): Cpu {
  return { vendor: 'unknown', family: 0, model: 0, stepping: 0 };
}

type ErratumName = keyof Errata;

/**
 * Errata by family and model: libipt's `pt_cpu_errata` (libipt/src/pt_config.c)
 * at the commit the shared vectors come from (8978561f), group for group.
 */
const ERRATA_GROUPS: readonly { family: number; models: readonly number[]; errata: readonly ErratumName[] }[] = [
  // Broadwell.
  { family: 0x6, models: [0x3d, 0x47, 0x4f, 0x56], errata: ['bdm70', 'bdm64'] },
  // Skylake, Kaby Lake, Coffee Lake, Comet Lake client.
  {
    family: 0x6,
    models: [0x4e, 0x5e, 0x8e, 0x9e, 0xa5, 0xa6],
    errata: ['bdm70', 'skd007', 'skd022', 'skd010', 'skl014', 'skl168'],
  },
  // Skylake server, Ice Lake server.
  { family: 0x6, models: [0x55, 0x6a, 0x6c], errata: ['bdm70', 'skl014', 'skd022', 'skz84'] },
  // Sapphire Rapids, Granite Rapids, Emerald Rapids.
  { family: 0x6, models: [0x8f, 0xcf, 0xad, 0xae], errata: ['bdm70', 'skd022', 'skz84'] },
  // Cannon Lake, Ice Lake, Tiger Lake client.
  { family: 0x6, models: [0x66, 0x7d, 0x7e, 0x8c, 0x8d, 0xa7, 0xa8], errata: ['bdm70', 'skl014', 'skd022'] },
  // Alder Lake, Raptor Lake, Meteor Lake, Arrow Lake, Lunar Lake, Panther Lake.
  {
    family: 0x6,
    models: [0x97, 0x9a, 0xba, 0xb7, 0xbf, 0xc5, 0xc6, 0xb5, 0xaa, 0xac, 0xbd, 0xcc, 0xd5],
    errata: ['bdm70', 'skd022', 'apl11'],
  },
  // Apollo Lake, Denverton.
  { family: 0x6, models: [0x5c, 0x5f], errata: ['apl12', 'apl11'] },
  // Gemini Lake, Snow Ridge, Elkhart Lake, Jasper Lake, Grand Ridge, Sierra Forest, Clearwater Forest.
  { family: 0x6, models: [0x7a, 0x86, 0x96, 0x9c, 0xb6, 0xaf, 0xdd], errata: ['apl11'] },
  { family: 0x12, models: [0x01, 0x03], errata: ['bdm70', 'skd022', 'apl11'] },
  { family: 0x13, models: [0x01], errata: ['bdm70', 'skd022', 'skz84'] },
];

/**
 * The errata to apply for `cpu`, or `-ErrorCode.BadCpu` if libipt does not
 * know the CPU (any non-Intel vendor, or an Intel family/model missing from
 * its table). ptdump then reports `failed to determine errata: unknown cpu`
 * and decodes with no errata.
 */
export function errataFor(cpu: Cpu): Errata | number {
  if (cpu.vendor !== 'intel') return -ErrorCode.BadCpu;
  for (const group of ERRATA_GROUPS) {
    if (group.family !== cpu.family || !group.models.includes(cpu.model)) continue;
    const errata = noErrata();
    for (const name of group.errata) errata[name] = true;
    return errata;
  }
  return -ErrorCode.BadCpu;
}

/**
 * Parse one number as C's `strtol(s, &end, 0)` does: optional blanks and
 * sign, then hex (`0x`), octal (leading `0`) or decimal. Returns the value
 * and where parsing stopped; `end === start` when no digits were read.
 */
function strtol(s: string, start: number): { value: number; end: number } {
  let i = start;
  while (i < s.length && ' \t\n\v\f\r'.includes(s[i]!)) i++;
  let sign = 1;
  if (s[i] === '+' || s[i] === '-') {
    if (s[i] === '-') sign = -1;
    i++;
  }
  let base = 10;
  if (s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && /[0-9a-fA-F]/.test(s[i + 2] ?? '')) {
    base = 16;
    i += 2;
  } else if (s[i] === '0') {
    base = 8;
  }
  const digitsStart = i;
  let value = 0;
  for (; i < s.length; i++) {
    const d = parseInt(s[i]!, base);
    if (Number.isNaN(d)) break;
    value = value * base + d;
  }
  if (i === digitsStart) return { value: 0, end: start };
  return { value: sign * value, end: i };
}

/**
 * Parse `F/M[/S]` as libipt's `pt_cpu_parse`: each part in C number syntax,
 * family 0..65535, model and stepping 0..255, stepping 0 when omitted.
 * Returns null when the text is not in that form.
 */
export function parseCpuNumbers(text: string): Cpu | null {
  const family = strtol(text, 0);
  if (family.end === 0 || text[family.end] !== '/') return null;
  if (family.value < 0 || family.value > 0xffff) return null;

  const modelStart = family.end + 1;
  const model = strtol(text, modelStart);
  if (model.end === modelStart) return null;
  if (model.end !== text.length && text[model.end] !== '/') return null;
  if (model.value < 0 || model.value > 0xff) return null;

  let stepping = 0;
  if (model.end !== text.length) {
    const steppingStart = model.end + 1;
    const parsed = strtol(text, steppingStart);
    // Like libipt, an empty stepping after the separator reads as 0.
    if (parsed.end !== text.length) return null;
    if (parsed.value < 0 || parsed.value > 0xff) return null;
    stepping = parsed.value;
  }
  return { vendor: 'intel', family: family.value, model: model.value, stepping };
}

/**
 * The host CPU from /proc/cpuinfo, standing in for ptxed's `--cpu auto`
 * (which reads CPUID; JavaScript cannot). Linux derives "cpu family" and
 * "model" from CPUID leaf 1 the way libipt's `pt_cpu_read` does (extended
 * model for family 6 and 15, extended family for 15). A non-Intel or
 * unreadable host gives {@link noCpu}.
 */
export function hostCpu(cpuinfo?: string): Cpu {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return noCpu();
    }
  }
  // The first processor block is enough: all cores of a package match.
  const field = (name: string): string | undefined => {
    const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text!);
    return m?.[1]?.trim();
  };
  if (field('vendor_id') !== 'GenuineIntel') return noCpu();
  const family = Number(field('cpu family'));
  const model = Number(field('model'));
  const stepping = Number(field('stepping') ?? 0);
  if (!Number.isInteger(family) || !Number.isInteger(model)) return noCpu();
  return { vendor: 'intel', family, model, stepping: Number.isInteger(stepping) ? stepping : 0 };
}

/**
 * Parse the `--cpu` argument of ptdump/ptxed: `none`, `auto` (the host, see
 * {@link hostCpu}) or `F/M[/S]`. Returns null for malformed text (ptdump:
 * "cpu must be specified as f/m[/s]").
 */
export function parseCpu(text: string, cpuinfo?: string): Cpu | null {
  if (text === 'none') return noCpu();
  if (text === 'auto') return hostCpu(cpuinfo);
  return parseCpuNumbers(text);
}
