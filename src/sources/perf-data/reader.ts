import { PERF_HEADER_SIZE, PerfRecordType } from '../perf-event/record.js';
import type { RandomAccessFile } from './file-access.js';
import type { FileSection } from './header.js';
import { AUXTRACE_RECORD_SIZE, PerfUserRecordType } from './user-records.js';

/**
 * Streaming reader over the data section of a perf.data: records are
 * served from a window of the file (1 MiB plus one maximal record), so
 * memory stays flat whatever the file size. The bytes that follow an
 * AUXTRACE record are skipped, not read: {@link RecordView.auxDataOffset}
 * says where they are.
 *
 * Every structural problem (a size below the header, a record or its
 * AUXTRACE data running past the data section) throws a PerfDataError
 * naming the file offset; the reader never loops on a zero size.
 */
export interface RecordView {
  /** File offset of the record header. */
  fileOffset: number;
  type: number;
  misc: number;
  /** `header.size` (without AUXTRACE data). */
  size: number;
  /** The window holding the record at {@link pos}; valid until the next call. */
  bytes: Uint8Array;
  view: DataView;
  pos: number;
  /** For AUXTRACE: file offset and size of the trace bytes after the record; else 0. */
  auxDataOffset: number;
  auxDataSize: number;
}

const WINDOW = 1 << 20;
/** Largest record: header.size is a u16. */
const MAX_RECORD = 0xffff;

export class PerfDataRecordReader {
  private readonly buf = new Uint8Array(WINDOW + MAX_RECORD + 1);
  private readonly dv = new DataView(this.buf.buffer);
  /** File offset of buf[0]. */
  private winStart = 0;
  /** Valid bytes in buf. */
  private winLen = 0;
  /** File offset of the next record. */
  private next: number;
  private readonly end: number;
  private readonly rec: RecordView;

  constructor(
    private readonly file: RandomAccessFile,
    data: FileSection,
  ) {
    this.next = data.offset;
    this.end = data.offset + data.size;
    this.rec = {
      fileOffset: 0,
      type: 0,
      misc: 0,
      size: 0,
      bytes: this.buf,
      view: this.dv,
      pos: 0,
      auxDataOffset: 0,
      auxDataSize: 0,
    };
  }

  /** File offset of the next record (the end of the data section when done). */
  get offset(): number {
    return this.next;
  }

  /** Make [offset, offset + n) available in the window. */
  private ensure(offset: number, n: number): void {
    if (offset >= this.winStart && offset + n <= this.winStart + this.winLen) return;
    const want = Math.min(this.buf.length, this.end - offset);
    const got = this.file.readInto(this.buf, 0, offset, want);
    this.winStart = offset;
    this.winLen = got;
    if (got < n) throw this.file.error(offset + got, `data section truncated: short read`);
  }

  /** The next record, or null at the end of the data section. Throws PerfDataError. */
  read(): RecordView | null {
    const at = this.next;
    if (at >= this.end) return null;
    const left = this.end - at;
    if (left < PERF_HEADER_SIZE) {
      throw this.file.error(at, `truncated record header: ${left} bytes left in the data section`);
    }
    this.ensure(at, PERF_HEADER_SIZE);
    const pos = at - this.winStart;
    const type = this.dv.getUint32(pos, true);
    const misc = this.dv.getUint16(pos + 4, true);
    const size = this.dv.getUint16(pos + 6, true);
    if (size < PERF_HEADER_SIZE) throw this.file.error(at, `record size ${size} smaller than its 8-byte header (type ${type})`);
    if (size > left) {
      throw this.file.error(at, `record of type ${type} and size ${size} runs past the end of the data section (0x${this.end.toString(16)})`);
    }
    if (type === 0) throw this.file.error(at, 'record of type 0');
    this.ensure(at, size);
    const r = this.rec;
    r.fileOffset = at;
    r.type = type;
    r.misc = misc;
    r.size = size;
    r.pos = at - this.winStart;
    r.auxDataOffset = 0;
    r.auxDataSize = 0;
    let total = size;
    if (type === PerfUserRecordType.Auxtrace) {
      if (size < AUXTRACE_RECORD_SIZE) throw this.file.error(at, `AUXTRACE record size ${size} below ${AUXTRACE_RECORD_SIZE}`);
      const dataSize = this.dv.getBigUint64(r.pos + 8, true);
      if (dataSize > BigInt(this.end - at - size)) {
        throw this.file.error(at, `AUXTRACE data of 0x${dataSize.toString(16)} bytes runs past the end of the data section (0x${this.end.toString(16)})`);
      }
      r.auxDataOffset = at + size;
      r.auxDataSize = Number(dataSize);
      total += r.auxDataSize;
    }
    this.next = at + total;
    return r;
  }
}

/** True for records the kernel writes (they may carry a sample_id trailer). */
export function isKernelRecord(type: number): boolean {
  return type > 0 && type < PerfUserRecordType.HeaderAttr;
}

/** PERF_RECORD_SAMPLE: its sample data starts right after the header. */
export function isSampleRecord(type: number): boolean {
  return type === PerfRecordType.Sample;
}
