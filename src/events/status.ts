/**
 * Status flags returned beside results by the query, instruction and block
 * decoders (libipt's `pt_status_flag`).
 */
export const enum Status {
  /** An event is pending: fetch it before decoding further. */
  EventPending = 1 << 0,
  /** The IP is not available (tracing disabled). */
  IpSuppressed = 1 << 1,
  /** The end of the trace was reached. */
  Eos = 1 << 2,
}
