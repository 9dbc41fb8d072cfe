/**
 * Decoder status codes. The numbering and meaning follow libipt's
 * `pt_error_code` so that messages and differential tests line up with the
 * reference decoder; functions return them negated, like libipt.
 */
export enum ErrorCode {
  Ok = 0,
  Internal,
  Invalid,
  NoSync,
  BadOpcode,
  BadPacket,
  BadContext,
  Eos,
  BadQuery,
  NoMem,
  BadConfig,
  NoIp,
  IpSuppressed,
  NoMap,
  BadInsn,
  NoTime,
  NoCbr,
  BadImage,
  BadLock,
  NotSupported,
  RetstackEmpty,
  BadRetcomp,
  BadStatusUpdate,
  NoEnable,
  EventIgnored,
  Overflow,
  BadFile,
  BadCpu,
}

const MESSAGES: readonly string[] = [
  'OK',
  'internal error',
  'invalid argument',
  'decoder out of sync',
  'unknown opcode',
  'unknown packet',
  'unexpected packet context',
  'reached end of trace stream',
  'trace stream does not match query',
  'out of memory',
  'bad configuration',
  'no ip',
  'ip has been suppressed',
  'no memory mapped at this address',
  'unknown instruction',
  'no timing information',
  'no core:bus ratio',
  'bad image',
  'locking error',
  'not supported',
  'compressed return without call',
  'bad compressed return',
  'bad status update',
  'expected tracing enabled event',
  'event ignored',
  'overflow',
  'bad file',
  'unknown cpu',
];

/** The message for a status code; accepts the code negated or not. */
export function errorMessage(code: number): string {
  const c = code < 0 ? -code : code;
  return MESSAGES[c] ?? 'internal error.';
}

/** Symbolic name (such as `bad_opc`) for JSON output and logs. */
export function errorName(code: number): string {
  const c = code < 0 ? -code : code;
  return ERROR_NAMES[c] ?? 'internal';
}

const ERROR_NAMES: readonly string[] = [
  'ok', 'internal', 'invalid', 'nosync', 'bad_opc', 'bad_packet', 'bad_context',
  'eos', 'bad_query', 'nomem', 'bad_config', 'noip', 'ip_suppressed', 'nomap',
  'bad_insn', 'no_time', 'no_cbr', 'bad_image', 'bad_lock', 'not_supported',
  'retstack_empty', 'bad_retcomp', 'bad_status_update', 'no_enable',
  'event_ignored', 'overflow', 'bad_file', 'bad_cpu',
];

/**
 * A decode error as an exception, for API boundaries that throw (the CLI,
 * async iterators). Decoders themselves return negative codes.
 */
export class PtError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly offset: number,
    message?: string,
  ) {
    super(message ?? `${errorMessage(code)} at offset 0x${offset.toString(16)}`);
    this.name = 'PtError';
  }
}
