/**
 * Address spaces (libipt's `pt_asid`). How addresses themselves are
 * represented (signed doubles) is described in packets/address.ts, whose
 * helpers are re-exported here for the layers above.
 */
export {
  ipFromHiLo,
  ipFromBigInt,
  unsignedFromHiLo,
  isExactIp,
  ipHi,
  ipLo,
  ipToBigInt,
  formatIp,
  formatIpShort,
} from '../packets/address.js';

/** Wildcard CR3: matches any CR3 (libipt's `pt_asid_no_cr3`). */
export const NO_CR3 = -1;
/** Wildcard VMCS base: matches any VMCS (libipt's `pt_asid_no_vmcs`). */
export const NO_VMCS = -1;

/**
 * An address space identifier (libipt's `pt_asid`): a CR3 value and a VMCS
 * base address, each either a concrete value or a wildcard. CR3 and VMCS
 * bases are physical addresses below 2^52, so a number holds them exactly.
 * Instances are immutable so they can be shared and compared by identity.
 */
export class Asid {
  constructor(
    readonly cr3: number = NO_CR3,
    readonly vmcs: number = NO_VMCS,
  ) {}

  /** True if both fields are wildcards. */
  get isAny(): boolean {
    return this.cr3 === NO_CR3 && this.vmcs === NO_VMCS;
  }

  toString(): string {
    const cr3 = this.cr3 === NO_CR3 ? '*' : '0x' + this.cr3.toString(16);
    const vmcs = this.vmcs === NO_VMCS ? '*' : '0x' + this.vmcs.toString(16);
    return `{cr3: ${cr3}, vmcs: ${vmcs}}`;
  }
}

/** The address space that matches every other one. */
export const ANY_ASID = new Asid();

/**
 * libipt's `pt_asid_match`: two address spaces match unless a field is
 * concrete on both sides and differs.
 */
export function asidMatch(a: Asid, b: Asid): boolean {
  if (a === b) return true;
  if (a.cr3 !== b.cr3 && a.cr3 !== NO_CR3 && b.cr3 !== NO_CR3) return false;
  if (a.vmcs !== b.vmcs && a.vmcs !== NO_VMCS && b.vmcs !== NO_VMCS) return false;
  return true;
}
