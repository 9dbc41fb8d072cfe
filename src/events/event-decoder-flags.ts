/** Flags of the event layer (libipt's pt_conf_flags.variant.event). */
export interface EventDecoderFlags {
  /** Keep the timing calibration across an OVF. */
  keepTcalOnOvf: boolean;
  /** Report interrupt-flag changes from MODE.Exec (event tracing). */
  enableIflags: boolean;
}
