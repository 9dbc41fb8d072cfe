/**
 * Execution modes (libipt's `pt_exec_mode`), as MODE.Exec packets give them
 * (SDM Vol. 3C, "MODE.Exec Packet": CS.L and CS.D of the code segment).
 */
export enum ExecMode {
  Unknown = 0,
  Bit16 = 1,
  Bit32 = 2,
  Bit64 = 3,
}

/** Bitness (16, 32, 64) of an execution mode, or 0 for Unknown. */
export function execModeBits(mode: ExecMode): number {
  return mode === ExecMode.Bit64 ? 64 : mode === ExecMode.Bit32 ? 32 : mode === ExecMode.Bit16 ? 16 : 0;
}

/**
 * The mode that CS.L and CS.D select (libipt's `pt_get_exec_mode`): 64-bit
 * with CS.L, else 32-bit with CS.D, else 16-bit; CS.L together with CS.D is
 * reserved.
 */
export function execModeOf(csl: boolean, csd: boolean): ExecMode {
  if (csl) return csd ? ExecMode.Unknown : ExecMode.Bit64;
  return csd ? ExecMode.Bit32 : ExecMode.Bit16;
}
