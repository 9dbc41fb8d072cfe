import { SbPrintFlag } from './options.js';
import {
  PERF_AUX_FLAG_TRUNCATED,
  PERF_RECORD_MISC_COMM_EXEC,
  PERF_RECORD_MISC_SWITCH_OUT,
  PerfRecord,
  PerfRecordType,
  SampleField,
} from './record.js';

/**
 * The text libipt's sideband library prints for a perf_event record
 * (pt_sb_pevent_print): an optional `<file>:` and `<offset>` column, an
 * optional TSC column, then the record in compact (one line) or verbose
 * (one field per line) form, then its samples.
 *
 * Compact:  `PERF_RECORD_MMAP  1/1, a000, 1, 0, a.bin  { 1/1 0 1 cpu-2 3 4 }`
 * Verbose:  `PERF_RECORD_MMAP\n  pid: 1\n  tid: 1 ...`
 * All numbers are lower-case hex without 0x, as libipt prints them.
 */

const hex = (v: number | bigint): string => v.toString(16);
const hex16 = (v: number | bigint): string => v.toString(16).padStart(16, '0');

/** The record itself, without position, time or samples. */
export function formatRecordBody(rec: PerfRecord, flags: number): string {
  const compact = (flags & SbPrintFlag.Compact) !== 0;
  const verbose = (flags & SbPrintFlag.Verbose) !== 0;
  let s = '';
  const add = (name: string, compactArgs: string, fields: [string, string][]): void => {
    if (compact) s += compactArgs ? `${name}  ${compactArgs}` : name;
    if (verbose) {
      s += name;
      for (const [k, v] of fields) s += `\n  ${k}: ${v}`;
    }
  };

  switch (rec.type) {
    case PerfRecordType.Mmap:
      add('PERF_RECORD_MMAP', `${hex(rec.pid)}/${hex(rec.tid)}, ${hex(rec.addr)}, ${hex(rec.len)}, ${hex(rec.pgoff)}, ${rec.filename}`, [
        ['pid', hex(rec.pid)],
        ['tid', hex(rec.tid)],
        ['addr', hex(rec.addr)],
        ['len', hex(rec.len)],
        ['pgoff', hex(rec.pgoff)],
        ['filename', rec.filename],
      ]);
      break;

    case PerfRecordType.Lost:
      add('PERF_RECORD_LOST', `${hex(rec.id)}, ${hex(rec.lost)}`, [
        ['id', hex(rec.id)],
        ['lost', hex(rec.lost)],
      ]);
      break;

    case PerfRecordType.Comm: {
      const name = rec.misc & PERF_RECORD_MISC_COMM_EXEC ? 'PERF_RECORD_COMM.EXEC' : 'PERF_RECORD_COMM';
      add(name, `${hex(rec.pid)}/${hex(rec.tid)}, ${rec.comm}`, [
        ['pid', hex(rec.pid)],
        ['tid', hex(rec.tid)],
        ['comm', rec.comm],
      ]);
      break;
    }

    case PerfRecordType.Exit:
    case PerfRecordType.Fork:
      add(
        rec.type === PerfRecordType.Exit ? 'PERF_RECORD_EXIT' : 'PERF_RECORD_FORK',
        `${hex(rec.pid)}/${hex(rec.tid)}, ${hex(rec.ppid)}/${hex(rec.ptid)}, ${hex(rec.time)}`,
        [
          ['pid', hex(rec.pid)],
          ['ppid', hex(rec.ppid)],
          ['tid', hex(rec.tid)],
          ['ptid', hex(rec.ptid)],
          ['time', hex(rec.time)],
        ],
      );
      break;

    case PerfRecordType.Throttle:
    case PerfRecordType.Unthrottle:
      add(
        rec.type === PerfRecordType.Throttle ? 'PERF_RECORD_THROTTLE' : 'PERF_RECORD_UNTHROTTLE',
        `${hex(rec.time)}, ${hex(rec.id)}, ${hex(rec.streamId)}`,
        [
          ['time', hex(rec.time)],
          ['id', hex(rec.id)],
          ['stream_id', hex(rec.streamId)],
        ],
      );
      break;

    case PerfRecordType.Mmap2:
      add(
        'PERF_RECORD_MMAP2',
        `${hex(rec.pid)}/${hex(rec.tid)}, ${hex(rec.addr)}, ${hex(rec.len)}, ${hex(rec.pgoff)}, ` +
          `${hex(rec.maj)}, ${hex(rec.min)}, ${hex(rec.ino)}, ${hex(rec.inoGeneration)}, ` +
          `${hex(rec.prot)}, ${hex(rec.mmapFlags)}, ${rec.filename}`,
        [
          ['pid', hex(rec.pid)],
          ['tid', hex(rec.tid)],
          ['addr', hex(rec.addr)],
          ['len', hex(rec.len)],
          ['pgoff', hex(rec.pgoff)],
          ['maj', hex(rec.maj)],
          ['min', hex(rec.min)],
          ['ino', hex(rec.ino)],
          ['ino_generation', hex(rec.inoGeneration)],
          ['prot', hex(rec.prot)],
          ['flags', hex(rec.mmapFlags)],
          ['filename', rec.filename],
        ],
      );
      break;

    case PerfRecordType.Aux: {
      const name = rec.auxFlags & PERF_AUX_FLAG_TRUNCATED ? 'PERF_RECORD_AUX.TRUNCATED' : 'PERF_RECORD_AUX';
      add(name, `${hex(rec.auxOffset)}, ${hex(rec.auxSize)}, ${hex(rec.auxFlags)}`, [
        ['aux offset', hex(rec.auxOffset)],
        ['aux size', hex(rec.auxSize)],
        ['flags', hex(rec.auxFlags)],
      ]);
      break;
    }

    case PerfRecordType.ItraceStart:
      add('PERF_RECORD_ITRACE_START', `${hex(rec.pid)}/${hex(rec.tid)}`, [
        ['pid', hex(rec.pid)],
        ['tid', hex(rec.tid)],
      ]);
      break;

    case PerfRecordType.LostSamples:
      add('PERF_RECORD_LOST_SAMPLES', hex(rec.lost), [['lost', hex(rec.lost)]]);
      break;

    case PerfRecordType.Switch:
      if (compact || verbose) s += `PERF_RECORD_SWITCH.${rec.misc & PERF_RECORD_MISC_SWITCH_OUT ? 'OUT' : 'IN'}`;
      break;

    case PerfRecordType.SwitchCpuWide: {
      const out = (rec.misc & PERF_RECORD_MISC_SWITCH_OUT) !== 0;
      const pfx = out ? 'next' : 'prev';
      add(`PERF_RECORD_SWITCH_CPU_WIDE.${out ? 'OUT' : 'IN'}`, `${hex(rec.nextPrevPid)}/${hex(rec.nextPrevTid)}`, [
        [`${pfx} pid`, hex(rec.nextPrevPid)],
        [`${pfx} tid`, hex(rec.nextPrevTid)],
      ]);
      break;
    }

    default:
      if (compact) s += `UNKNOWN (${hex(rec.type)}, ${hex(rec.misc)})`;
      if (verbose) s += `UNKNOWN\n  type: ${hex(rec.type)}\n  misc: ${hex(rec.misc)}`;
      break;
  }
  return s;
}

/** The sample_id fields: `  { pid/tid time id cpu-N stream identifier }` or one per line. */
export function formatSamples(rec: PerfRecord, flags: number): string {
  const f = rec.samples;
  let s = '';
  if (flags & SbPrintFlag.Compact) {
    s += '  {';
    if (f & SampleField.Tid) s += ` ${hex(rec.samplePid)}/${hex(rec.sampleTid)}`;
    if (f & SampleField.Time) s += ` ${hex(rec.sampleTime)}`;
    if (f & SampleField.Id) s += ` ${hex(rec.sampleId)}`;
    if (f & SampleField.Cpu) s += ` cpu-${hex(rec.sampleCpu)}`;
    if (f & SampleField.StreamId) s += ` ${hex(rec.sampleStreamId)}`;
    if (f & SampleField.Identifier) s += ` ${hex(rec.sampleIdentifier)}`;
    s += ' }';
  }
  if (flags & SbPrintFlag.Verbose) {
    if (f & SampleField.Tid) s += `\n  pid: ${hex(rec.samplePid)}\n  tid: ${hex(rec.sampleTid)}`;
    if (f & SampleField.Time) s += `\n  time: ${hex(rec.sampleTime)}`;
    if (f & SampleField.Id) s += `\n  id: ${hex(rec.sampleId)}`;
    if (f & SampleField.Cpu) s += `\n  cpu: ${hex(rec.sampleCpu)}`;
    if (f & SampleField.StreamId) s += `\n  stream id: ${hex(rec.sampleStreamId)}`;
    if (f & SampleField.Identifier) s += `\n  identifier: ${hex(rec.sampleIdentifier)}`;
  }
  return s;
}

/**
 * The full text for one record, ending in a newline, or '' when `flags`
 * is 0 (libipt prints nothing then). `tsc` is the record's time after
 * conversion and --pevent:tsc-offset; it is shown with --sb:time when the
 * record has a time sample. `fileOffset` is relative to the loaded range.
 */
export function formatSidebandRecord(
  rec: PerfRecord,
  filename: string,
  fileOffset: number,
  tsc: bigint,
  flags: number,
): string {
  if (!flags) return '';
  let s = '';
  const withName = (flags & SbPrintFlag.Filename) !== 0;
  const withOffset = (flags & SbPrintFlag.FileOffset) !== 0;
  if (withName && withOffset) s += `${filename}:${hex16(fileOffset)}  `;
  else if (withName) s += `${filename}  `;
  else if (withOffset) s += `${hex16(fileOffset)}  `;
  if (flags & SbPrintFlag.Tsc && rec.samples & SampleField.Time) s += `${hex16(tsc)}  `;
  s += formatRecordBody(rec, flags);
  s += formatSamples(rec, flags);
  return s + '\n';
}

/**
 * A sideband diagnostic as ptxed prints it:
 * `[<file>:<offset> sideband error: <message>]` (or `warning`).
 */
export function formatSidebandDiagnostic(
  filename: string,
  fileOffset: number,
  severity: 'error' | 'warning',
  message: string,
): string {
  return `[${filename}:${hex16(fileOffset)} sideband ${severity}: ${message}]\n`;
}
