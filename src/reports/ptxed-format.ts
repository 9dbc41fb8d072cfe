/**
 * Text output in the format of libipt's ptxed (ptxed/src/ptxed.c):
 * instruction lines, `[event]` lines, `[offset, ip: error: message]`
 * diagnostics and statistics. Pure formatting: called only for lines that
 * are printed, never from the decode loop itself.
 */
import { errorMessage } from '../packets/errors.js';
import { EventType, type PtEvent } from '../events/event.js';
import { formatIp, formatIpShort } from '../flow/address-space.js';
import { ExecMode } from '../packets/exec-mode.js';

export interface PtxedFormatOptions {
  /** `--event:ip`: show event addresses. */
  eventIp: boolean;
  /** `--event:time`: show the event's TSC when it has one. */
  eventTime: boolean;
  /** `--offset`: show the trace offset. */
  offset: boolean;
}

function hex16(hi: number, lo: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

function hexShort(hi: number, lo: number): string {
  return hi === 0 ? (lo >>> 0).toString(16) : (hi >>> 0).toString(16) + (lo >>> 0).toString(16).padStart(8, '0');
}

function hex64(n: number): string {
  return n.toString(16).padStart(16, '0');
}

export function execModeName(mode: ExecMode): string {
  switch (mode) {
    case ExecMode.Unknown:
      return '<unknown>';
    case ExecMode.Bit16:
      return '16-bit';
    case ExecMode.Bit32:
      return '32-bit';
    case ExecMode.Bit64:
      return '64-bit';
    default:
      return '<invalid>';
  }
}

/** The text of one event line, brackets included (ptxed's print_event). */
export function formatEvent(ev: PtEvent, opts: PtxedFormatOptions, offset = 0): string {
  let s = '[';
  if (opts.offset) s += hex64(offset) + '  ';
  if (opts.eventTime && ev.hasTsc) s += hex16(ev.tscHi, ev.tscLo) + '  ';
  const ip = (): string => (opts.eventIp && !ev.ipSuppressed ? ', ip: ' + formatIp(ev.ip) : '');
  switch (ev.type) {
    case EventType.Enabled:
      s += ev.resumed ? 'resumed' : 'enabled';
      if (opts.eventIp) s += ', ip: ' + formatIp(ev.ip);
      break;
    case EventType.Disabled:
      s += 'disabled' + ip();
      break;
    case EventType.AsyncDisabled:
      s += 'disabled';
      if (opts.eventIp) {
        s += ', at: ' + formatIp(ev.at);
        if (!ev.ipSuppressed) s += ', ip: ' + formatIp(ev.ip);
      }
      break;
    case EventType.AsyncBranch:
      s += 'interrupt';
      if (opts.eventIp) {
        s += ', from: ' + formatIp(ev.at);
        if (!ev.ipSuppressed) s += ', to: ' + formatIp(ev.ip);
      }
      break;
    case EventType.Paging:
      s += 'paging, cr3: ' + hex64(ev.cr3) + (ev.nonRoot ? ', nr' : '');
      break;
    case EventType.AsyncPaging:
      s += 'paging, cr3: ' + hex64(ev.cr3) + (ev.nonRoot ? ', nr' : '');
      if (opts.eventIp) s += ', ip: ' + formatIp(ev.ip);
      break;
    case EventType.Overflow:
      s += 'overflow' + ip();
      break;
    case EventType.ExecMode:
      s += 'exec mode: ' + execModeName(ev.mode) + ip();
      break;
    case EventType.Tsx:
      s += ev.aborted ? 'aborted' : ev.speculative ? 'begin transaction' : 'committed';
      s += ip();
      break;
    case EventType.Stop:
      s += 'stopped';
      break;
    case EventType.Vmcs:
      s += 'vmcs, base: ' + hex64(ev.base);
      break;
    case EventType.AsyncVmcs:
      s += 'vmcs, base: ' + hex64(ev.base);
      if (opts.eventIp) s += ', ip: ' + formatIp(ev.ip);
      break;
    case EventType.Exstop:
      s += 'exstop' + ip();
      break;
    case EventType.Mwait:
      s += 'mwait ' + (ev.hints >>> 0).toString(16) + ' ' + (ev.ext >>> 0).toString(16) + ip();
      break;
    case EventType.Pwre:
      s += `pwre c${(ev.state + 1) & 0xf}.${(ev.subState + 1) & 0xf}` + (ev.hw ? ' hw' : '');
      break;
    case EventType.Pwrx:
      s += 'pwrx ';
      if (ev.interrupt) s += 'int: ';
      if (ev.store) s += 'st: ';
      if (ev.autonomous) s += 'hw: ';
      s += `c${(ev.last + 1) & 0xf} (c${(ev.deepest + 1) & 0xf})`;
      break;
    case EventType.Ptwrite:
      s += 'ptwrite: ' + hexShort(ev.payloadHi, ev.payloadLo) + ip();
      break;
    case EventType.Tick:
      s += 'tick' + ip();
      break;
    case EventType.Cbr:
      s += 'cbr: ' + ev.ratio.toString(16);
      break;
    case EventType.Mnt:
      s += 'mnt: ' + hexShort(ev.payloadHi, ev.payloadLo);
      break;
    case EventType.Tip:
      s += 'tip: ' + formatIpShort(ev.ip);
      break;
    case EventType.Tnt: {
      // As ptxed prints it: bits & index for index = size, size >> 1, ..., 1
      // (the size is at most 47, so only the low six bits are tested).
      s += 'tnt: ';
      for (let index = ev.tntSize; index; index >>= 1) s += ((ev.tntBits % 64) & index) !== 0 ? '!' : '.';
      break;
    }
    case EventType.Iflags:
      s += (ev.iflag ? 'interrupts enabled' : 'interrupts disabled') + ip();
      break;
    case EventType.Interrupt:
      s += 'interrupt ' + ev.vector;
      if (ev.hasCr2) s += ', cr2: ' + hex16(ev.cr2Hi, ev.cr2Lo);
      s += ip();
      break;
    case EventType.Iret:
      s += 'iret' + ip();
      break;
    case EventType.Smi:
      s += 'smi' + ip();
      break;
    case EventType.Rsm:
      s += 'rsm' + ip();
      break;
    case EventType.Init:
      s += 'init' + ip();
      break;
    case EventType.Sipi:
      s += 'sipi: ' + ev.vector.toString(16);
      break;
    case EventType.Vmentry:
      s += 'vmentry' + ip();
      break;
    case EventType.Vmexit:
      s += 'vmexit';
      if (ev.hasVector) s += ', intr: ' + ev.vector;
      if (ev.hasVmxr) s += ', vmxr: ' + hex16(ev.vmxrHi, ev.vmxrLo);
      if (ev.hasVmxq) s += ', vmxq: ' + hex16(ev.vmxqHi, ev.vmxqLo);
      s += ip();
      break;
    case EventType.Shutdown:
      s += 'shutdown' + ip();
      break;
    case EventType.Uintr:
      s += 'uintr ' + ev.vector + ip();
      break;
    case EventType.Uiret:
      s += 'uiret' + ip();
      break;
    case EventType.Swintr:
      s += 'swintr ' + ev.vector + ip();
      break;
    case EventType.Syscall:
      s += 'syscall' + ip();
      break;
    case EventType.Trig:
      s += 'trig ' + ev.trbv.toString(16).padStart(2, '0');
      if (ev.mult) s += ', mult';
      s += ip();
      if (ev.icnt) s += ', icnt: ' + ev.icnt;
      break;
    default:
      s += 'unknown event';
      break;
  }
  return s + ']';
}

/**
 * ptxed's diagnose(): `[<offset>, <ip>: <errtype>: <message>]`; when the
 * offset is not known (`offset` is a negative ErrorCode), a line saying why
 * and `[?, <ip>: ...]`.
 */
export function formatDiagnostic(offset: number, ip: number, errtype: string, code: number): string {
  if (offset < 0) return `could not determine offset: ${errorMessage(offset)}\n[?, ${formatIpShort(ip)}: ${errtype}: ${errorMessage(code)}]`;
  return `[${offset.toString(16)}, ${formatIpShort(ip)}: ${errtype}: ${errorMessage(code)}]`;
}
