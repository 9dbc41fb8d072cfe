/**
 * Streaming parser of qemu-user's `-d in_asm,exec,nochain,page,strace` log
 * (qemu 7.2 text formats). The log arrives in chunks of any size; lines are
 * found and parsed on the raw bytes, so the millions of `Trace` lines cost
 * no string allocation.
 *
 * Line kinds the recorder needs:
 * - `IN: sym` then one line per guest instruction (`0xADDR:  bytes  disasm`,
 *   bytes beyond 8 continue on a line of their own without disassembly), up
 *   to a blank line. Only the first address and the bytes are used: the
 *   disassembler's split into instructions is not reliable. That block: a translation block (TB) was translated. qemu translates
 *   a TB just before it first executes it, so the next `Trace` line names it.
 * - `Trace N: 0xHOSTPTR [CSBASE/PC/FLAGS/CFLAGS] sym`: a TB is about to
 *   execute (with `nochain`, every execution is logged). HOSTPTR identifies
 *   the translation until qemu flushes its code buffer (and then a new `IN:`
 *   precedes any reuse).
 * - `PID syscall(args) = result`: `-strace`. With `page`, qemu dumps the page
 *   table in the middle of mmap lines: `PID mmap(...)page layout changed ...`,
 *   the table, then ` = result`. The pieces are joined here.
 * - `--- SIGNAME {si_signo=..., si_code=N, si_addr=...} ---`: a signal is
 *   delivered to the guest.
 * - `start_code  0x...`, `entry  0x...`: the layout after loading the binary.
 */
import { ipFromHiLo } from '../../flow/address-space.js';

/** One translated block: where it starts and its guest code bytes. */
export interface TranslatedBlock {
  /** Address of the first byte (see address-space.ts for the representation). */
  readonly pc: number;
  /** All its code bytes, in address order. */
  readonly bytes: Uint8Array;
}

export interface QemuLogSink {
  /** A TB was translated; the next {@link executed} call runs it. */
  translated(tb: TranslatedBlock): void;
  /** A TB starts executing on vCPU `cpu`. */
  executed(cpu: number, hostPtr: number, pc: number): void;
  /** One complete `-strace` line (without the leading pid). */
  syscall(line: string): void;
  /** A signal is delivered; `siAddr` is null when not printed. */
  signal(name: string, siCode: number, siAddr: number | null): void;
  /** A `name  0xvalue` line of the post-load layout dump. */
  layout(name: string, value: number): void;
}

const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[97 + i] = 10 + i;
  HEX[65 + i] = 10 + i;
}

const NL = 10;
const SPACE = 32;
const MAX_TB_INSNS = 4096;
const LAYOUT_KEYS = new Set(['start_code', 'end_code', 'start_data', 'end_data', 'start_stack', 'brk', 'entry', 'start_brk']);

export class QemuLogParser {
  private carry: Buffer | null = null;
  /** The TB being read (between `IN:` and the blank line). */
  private inBlock = false;
  private readonly tbIps = new Float64Array(MAX_TB_INSNS);
  private readonly tbSizes = new Uint8Array(MAX_TB_INSNS);
  private tbBytes = new Uint8Array(1 << 14);
  private tbCount = 0;
  private tbByteCount = 0;
  /** A strace line cut by a page-table dump, waiting for its ` = result`. */
  private pendingSyscall: string | null = null;
  /** Bytes parsed so far. */
  bytesParsed = 0;

  constructor(private readonly sink: QemuLogSink) {}

  /** Parse a chunk; a trailing partial line is kept for the next one. */
  feed(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    let start = 0;
    const n = buf.length;
    while (start < n) {
      const nl = buf.indexOf(NL, start);
      if (nl < 0) break;
      this.line(buf, start, nl);
      start = nl + 1;
    }
    if (start < n) this.carry = Buffer.from(buf.subarray(start));
    this.bytesParsed += chunk.length;
  }

  /** End of the log: parse a last unterminated line. */
  end(): void {
    if (this.carry !== null) {
      const c = this.carry;
      this.carry = null;
      this.line(c, 0, c.length);
    }
    if (this.inBlock) this.finishBlock();
  }

  private line(b: Buffer, s: number, e: number): void {
    const c0 = b[s];
    if (this.inBlock) {
      if (e === s) return this.finishBlock();
      if (c0 === 0x30 /* 0 */ && b[s + 1] === 0x78 /* x */) return this.insnLine(b, s, e);
      // Anything else ends the block too (robustness).
      this.finishBlock();
    }
    if (c0 === 0x54 /* T */ && b[s + 1] === 0x72 && b[s + 5] === SPACE) return this.traceLine(b, s, e);
    if (e === s) return;
    if (c0 === 0x49 /* I */ && b[s + 1] === 0x4e && b[s + 2] === 0x3a /* IN: */) {
      this.inBlock = true;
      this.tbCount = 0;
      this.tbByteCount = 0;
      return;
    }
    if (c0 >= 0x30 && c0 <= 0x39) {
      // `PID syscall...` (strace) or a page-table row `start-end size prot`.
      return this.digitLine(b, s, e);
    }
    if (c0 === 0x2d /* - */ && b[s + 1] === 0x2d && b[s + 2] === 0x2d && b[s + 3] === SPACE) {
      return this.signalLine(b.toString('latin1', s, e));
    }
    if (c0 === SPACE && b[s + 1] === 0x3d /* = */ && this.pendingSyscall !== null) {
      const line = this.pendingSyscall + b.toString('latin1', s, e);
      this.pendingSyscall = null;
      this.sink.syscall(line);
      return;
    }
    if (c0 >= 0x61 && c0 <= 0x7a) {
      const text = b.toString('latin1', s, e);
      const m = /^([a-z_]+)\s+0x([0-9a-fA-F]+)$/.exec(text);
      if (m && LAYOUT_KEYS.has(m[1])) this.sink.layout(m[1], parseInt(m[2], 16));
    }
  }

  private digitLine(b: Buffer, s: number, e: number): void {
    let i = s;
    while (i < e && HEX[b[i]] >= 0) i++;
    if (b[i] === 0x2d /* - */) return; // page-table row
    if (b[i] !== SPACE) return;
    let text = b.toString('latin1', i + 1, e);
    const cut = text.indexOf('page layout changed');
    if (cut >= 0) {
      this.pendingSyscall = text.slice(0, cut);
      return;
    }
    if (this.pendingSyscall !== null) this.pendingSyscall = null;
    if (text.endsWith('\r')) text = text.slice(0, -1);
    this.sink.syscall(text);
  }

  private signalLine(text: string): void {
    const m = /^--- (SIG[A-Z0-9+-]+) \{([^}]*)\} ---/.exec(text);
    if (!m) return;
    const code = /si_code=(-?\d+)/.exec(m[2]);
    const addr = /si_addr=(0x[0-9a-fA-F]+|NULL)/.exec(m[2]);
    const siAddr = addr === null ? null : addr[1] === 'NULL' ? 0 : Number(BigInt(addr[1]) & 0xffffffffffffn);
    this.sink.signal(m[1], code ? Number(code[1]) : 0, siAddr);
  }

  /** `Trace N: 0xPTR [CSBASE/PC/FLAGS/CFLAGS] sym` */
  private traceLine(b: Buffer, s: number, e: number): void {
    let i = s + 6;
    let cpu = 0;
    while (i < e && b[i] >= 0x30 && b[i] <= 0x39) cpu = cpu * 10 + (b[i++] - 0x30);
    // ": 0x"
    i += 4;
    let ptr = 0;
    let h: number;
    while (i < e && (h = HEX[b[i]]) >= 0) {
      ptr = ptr * 16 + h;
      i++;
    }
    // " [" + 16 hex digits of cs_base + "/"
    i += 2;
    while (i < e && b[i] !== 0x2f) i++;
    i++;
    let hi = 0;
    let lo = 0;
    let digits = 0;
    const pcStart = i;
    while (i < e && (h = HEX[b[i]]) >= 0) i++;
    digits = i - pcStart;
    for (let k = pcStart; k < i; k++) {
      const v = HEX[b[k]];
      if (i - k > 8) hi = hi * 16 + v;
      else lo = lo * 16 + v;
    }
    if (digits === 0) return;
    this.sink.executed(cpu, ptr, ipFromHiLo(hi >>> 0, lo >>> 0));
  }

  /** `0xADDR:  b0 b1 ...  disasm`; a line with bytes only continues the previous instruction. */
  private insnLine(b: Buffer, s: number, e: number): void {
    let i = s + 2;
    let hi = 0;
    let lo = 0;
    const start = i;
    let h: number;
    while (i < e && HEX[b[i]] >= 0) i++;
    for (let k = start; k < i; k++) {
      const v = HEX[b[k]];
      if (i - k > 8) hi = hi * 16 + v;
      else lo = lo * 16 + v;
    }
    i += 3; // ":  "
    let count = 0;
    while (i + 1 < e && (h = HEX[b[i]]) >= 0 && HEX[b[i + 1]] >= 0 && (i + 2 >= e || b[i + 2] === SPACE)) {
      if (this.tbByteCount === this.tbBytes.length) {
        const bigger = new Uint8Array(this.tbBytes.length * 2);
        bigger.set(this.tbBytes);
        this.tbBytes = bigger;
      }
      this.tbBytes[this.tbByteCount++] = h * 16 + HEX[b[i + 1]];
      count++;
      i += 3;
      if (i < e && b[i] === SPACE) break; // two spaces: the disassembly follows
    }
    while (i < e && b[i] === SPACE) i++;
    const continuation = i >= e && this.tbCount > 0;
    if (continuation) {
      this.tbSizes[this.tbCount - 1] += count;
      return;
    }
    if (this.tbCount === MAX_TB_INSNS) return;
    this.tbIps[this.tbCount] = ipFromHiLo(hi >>> 0, lo >>> 0);
    this.tbSizes[this.tbCount] = count;
    this.tbCount++;
  }

  private finishBlock(): void {
    this.inBlock = false;
    if (this.tbCount === 0) return;
    this.sink.translated({ pc: this.tbIps[0], bytes: this.tbBytes.slice(0, this.tbByteCount) });
    this.tbCount = 0;
    this.tbByteCount = 0;
  }
}
