/**
 * Intel PT packet kinds (Intel SDM Vol. 3C, chapter "Intel Processor Trace",
 * section "Trace Packets and Data Types").
 *
 * The numeric values are ptscope's own; they index lookup tables, so keep
 * them dense and starting at zero.
 */
export enum PacketType {
  Invalid = 0,
  Pad,
  Psb,
  PsbEnd,
  Fup,
  Tip,
  TipPge,
  TipPgd,
  Tnt8,
  Tnt64,
  ModeExec,
  ModeTsx,
  Pip,
  Vmcs,
  Cbr,
  Tsc,
  Tma,
  Mtc,
  Cyc,
  Stop,
  Ovf,
  Mnt,
  Exstop,
  Mwait,
  Pwre,
  Pwrx,
  Ptw,
  Cfe,
  Evd,
  Trig,
  /** PEBS-via-PT block begin (SDM "Block Begin Packet"). */
  Bbp,
  /** PEBS-via-PT block item; only valid between a BBP and its BEP. */
  Bip,
  /** PEBS-via-PT block end. */
  Bep,
}

/** Number of packet kinds, for sizing per-kind tables. */
export const PACKET_TYPE_COUNT = PacketType.Bep + 1;

/** Short lower-case names, as ptdump spells them where it has them. */
export const PACKET_NAMES: readonly string[] = [
  'invalid', 'pad', 'psb', 'psbend', 'fup', 'tip', 'tip.pge', 'tip.pgd',
  'tnt.8', 'tnt.64', 'mode.exec', 'mode.tsx', 'pip', 'vmcs', 'cbr', 'tsc',
  'tma', 'mtc', 'cyc', 'stop', 'ovf', 'mnt', 'exstop', 'mwait', 'pwre',
  'pwrx', 'ptw', 'cfe', 'evd', 'trig', 'bbp', 'bip', 'bep',
];

/**
 * IP compression as encoded in bits 7:5 of the IP packet header
 * (SDM "IP Compression"). The value is also the field ptdump prints.
 */
export enum IpCompression {
  Suppressed = 0,
  Update16 = 1,
  Update32 = 2,
  Sext48 = 3,
  Update48 = 4,
  Full = 6,
}

/** Payload bytes for each IP compression value; -1 marks a reserved value. */
export const IP_PAYLOAD_SIZE: readonly number[] = [0, 2, 4, 6, 6, -1, 8, -1];

/** Control-flow event types of the CFE packet (SDM "Control Flow Event Packet"). */
export enum CfeType {
  Intr = 0x01,
  Iret = 0x02,
  Smi = 0x03,
  Rsm = 0x04,
  Sipi = 0x05,
  Init = 0x06,
  VmEntry = 0x07,
  VmExit = 0x08,
  VmExitIntr = 0x09,
  Shutdown = 0x0a,
  Uintr = 0x0c,
  Uiret = 0x0d,
  SwIntr = 0x0e,
  Syscall = 0x0f,
}

/** Event data types of the EVD packet (SDM "Event Data Packet"). */
export enum EvdType {
  Cr2 = 0x00,
  VmxQualification = 0x01,
  VmxReason = 0x02,
}
