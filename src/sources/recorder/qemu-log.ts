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
 * - `Stopped execution of TB chain before 0xHOSTPTR [PC] sym`: the TB just
 *   logged by `Trace` did not start after all (an exit request, such as a
 *   signal to deliver, was noticed at its entry).
 * - `start_code  0x...`, `entry  0x...`: the layout after loading the binary.
 *
 * The log is not trusted: qemu-user runs the guest in its own process, so
 * the guest can write to the log's descriptor, and qemu's strace prints the
 * guest's strings unescaped (a path may hold newlines and fake lines). Both
 * can only happen while a syscall runs, that is between qemu's strace entry
 * `PID name(args)` (printed before the syscall) and its ` = result`
 * (printed after). So:
 * - every line from an entry up to the first line ending in a result is the
 *   syscall's text: nothing inside is read as a TB, a signal or a layout
 *   line, only qemu's page dump of an mmap;
 * - after the preamble (qemu's start-up output, before the first `IN:`),
 *   a line that is none of qemu's kinds, a result with no syscall, a layout
 *   line, or a syscall of another pid is a forgery: {@link RecordingTampered}.
 * A forgery that closes the window itself (a fake result, fake lines, then
 * a fake entry to absorb the real result) passes this; the semantic checks
 * (path-reconstruction.ts, log-channel.ts) catch what they can of the rest.
 */
import { ipFromHiLo } from '../../flow/address-space.js';

/** The emulator's log shows that the program altered it: one line for the user. */
export class RecordingTampered extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordingTampered';
  }
}

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
  /** The TB just reported by {@link executed} did not start after all. */
  notExecuted(hostPtr: number, pc: number): void;
  /** A syscall starts (its strace entry; the result, if any, comes with {@link syscall}). */
  syscallEntry?(name: string, text: string): void;
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
/** A longer line keeps only its first and last {@link LINE_KEEP} bytes. */
const MAX_LINE = 1 << 20;
const LINE_KEEP = 1 << 12;
/** Characters of a syscall's text kept (its strings may be long). */
const MAX_SYSCALL_TEXT = 1 << 16;
const LAYOUT_KEYS = new Set(['start_code', 'end_code', 'start_data', 'end_data', 'start_stack', 'brk', 'entry', 'start_brk']);
/**
 * qemu's result suffix: ` = 3`, ` = 0x4000...`, ` = -1 errno=2 (No such
 * file or directory)`, or a value with what the syscall wrote, ` = 0
 * ({tv_sec = 1,tv_nsec = 2})`; always right after the arguments' `)`.
 */
const RESULT = /\) = (?:-?\d+|0x[0-9a-fA-F]+)(?: \(.*\))?$|\) = -1 errno=\d+ \(.*\)$/;
/** The result alone on its line (something was written to the log while the syscall ran). */
const RESULT_LINE = /^ = (?:-?\d+|0x[0-9a-fA-F]+)(?: \(.*\))?$|^ = -1 errno=\d+ \(.*\)$/;
/** Lines of qemu's own kinds, which no string of the program may imitate. */
const LOG_LINE = /^(?:Trace \d+: 0x|IN: |----------------$|\d+ [a-z_0-9]+\(|--- SIG|0x[0-9a-f]+: )/;
const PAGE_ROW = /^[0-9a-f]{8,16}-[0-9a-f]{8,16} [0-9a-f]{8,16} [-r][-w][-x]$/;
const PAGE_HEADER = /^start +end +size +prot$/;
const SEPARATOR = '----------------';

export class QemuLogParser {
  private carry: Buffer | null = null;
  /** Head and tail of an overlong line being read. */
  private long: { head: Buffer; tail: Buffer } | null = null;
  /** The TB being read (between `IN:` and the blank line). */
  private inBlock = false;
  private readonly tbIps = new Float64Array(MAX_TB_INSNS);
  private readonly tbSizes = new Uint8Array(MAX_TB_INSNS);
  private tbBytes = new Uint8Array(1 << 14);
  private tbCount = 0;
  private tbByteCount = 0;
  /** A syscall whose result has not come yet: its text so far, and whether qemu is dumping the page table. */
  private pending: { text: string; pageDump: boolean } | null = null;

  /** The syscall whose result had not come when the log ended (null if none). */
  get unfinishedSyscall(): string | null {
    return this.pending === null ? null : this.pending.text.slice(0, Math.max(0, this.pending.text.indexOf('(')));
  }
  /** The whole entry text (`clone(CLONE_VM|...`) of {@link unfinishedSyscall}, or null. */
  get unfinishedSyscallText(): string | null {
    return this.pending === null ? null : this.pending.text;
  }
  /** Still in qemu's start-up output (before the first translation). */
  private preamble = true;
  /** The pid of the strace lines (one process per log: a whole-program log stops at clone, a thread's log is one thread's). */
  private pid: string | null = null;
  /** The parser was told to stop (the recording ends at an exec or clone entry). */
  private halted = false;
  /** Bytes parsed so far. */
  bytesParsed = 0;

  /**
   * `thread`: the log of one thread other than the first (qemu's `-d tid`):
   * it has no start-up output, and its syscalls are those of process `pid`.
   * A forked child's log starts with the result of the fork (`inSyscall`),
   * which its parent entered.
   */
  constructor(private readonly sink: QemuLogSink, thread?: { pid: number; inSyscall?: string }) {
    if (thread !== undefined) {
      this.preamble = false;
      this.pid = String(thread.pid);
      if (thread.inSyscall !== undefined) this.pending = { text: `${thread.inSyscall}()`, pageDump: false };
    }
  }

  /** Ignore the rest of the log (the recording stopped at this point). */
  halt(): void {
    this.halted = true;
  }

  /** Parse a chunk; a trailing partial line is kept for the next one. */
  feed(chunk: Buffer): void {
    this.bytesParsed += chunk.length;
    let buf = chunk;
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    let start = 0;
    const n = buf.length;
    while (start < n && !this.halted) {
      const nl = buf.indexOf(NL, start);
      if (nl < 0) break;
      if (this.long !== null) {
        const line = this.finishLong(buf.subarray(start, nl));
        this.line(line, 0, line.length);
      } else {
        this.line(buf, start, nl);
      }
      start = nl + 1;
    }
    if (start < n && !this.halted) {
      this.keepPartial(buf.subarray(start));
      this.earlyEntry(buf.subarray(start, Math.min(n, start + 256)));
    }
  }

  /**
   * A successful exec never ends its strace line (the new program replaces
   * the emulator), nor does a close of the emulator's log: such entries are
   * acted on as soon as they show, without waiting for the end of the line.
   */
  private earlyEntry(partial: Buffer): void {
    if (this.pending !== null || this.inBlock || this.long !== null) return;
    const m = /^(\d+) (execve|execveat|clone|clone3|fork|vfork|close|close_range|dup2|dup3)\(/.exec(partial.toString('latin1'));
    if (!m || (this.pid !== null && m[1] !== this.pid)) return;
    const text = partial.toString('latin1', m[1].length + 1);
    // The entry may have reached us cut inside its arguments (a chunk ends
    // anywhere): act only on the whole argument list, whose flags decide
    // (CLONE_THREAD, the descriptor closed). qemu prints it before the
    // syscall runs, so it always arrives. Only exec stops whatever its
    // arguments say (their strings may hold a parenthesis).
    if (m[2] !== 'execve' && m[2] !== 'execveat' && !text.includes(')')) return;
    this.sink.syscallEntry?.(m[2], text);
  }

  /** Keep a partial line for the next chunk; beyond {@link MAX_LINE}, only its head and tail. */
  private keepPartial(rest: Buffer): void {
    if (this.long !== null) {
      this.long.tail = Buffer.concat([this.long.tail, rest]).subarray(-LINE_KEEP);
      return;
    }
    if (rest.length > MAX_LINE) {
      this.long = { head: Buffer.from(rest.subarray(0, LINE_KEEP)), tail: Buffer.from(rest.subarray(-LINE_KEEP)) };
      return;
    }
    this.carry = Buffer.from(rest);
  }

  private finishLong(last: Buffer): Buffer {
    const l = this.long!;
    this.long = null;
    return Buffer.concat([l.head, Buffer.from(' ... '), Buffer.concat([l.tail, last]).subarray(-LINE_KEEP)]);
  }

  /** End of the log: parse a last unterminated line. */
  end(): void {
    if (!this.halted) {
      if (this.long !== null) {
        const line = this.finishLong(Buffer.alloc(0));
        this.line(line, 0, line.length);
      } else if (this.carry !== null) {
        const c = this.carry;
        this.carry = null;
        this.line(c, 0, c.length);
      }
    }
    if (this.inBlock) this.finishBlock();
  }

  private tampered(what: string, b: Buffer, s: number, e: number): never {
    const text = b.toString('latin1', s, Math.min(e, s + 120)).replace(/[^\x20-\x7e]/g, '?');
    throw new RecordingTampered(`${what} in the emulator's log: '${text}'`);
  }

  private line(b: Buffer, s: number, e: number): void {
    if (this.halted) return;
    if (this.pending !== null) return this.pendingLine(b, s, e);
    const c0 = b[s];
    if (this.inBlock) {
      if (e === s) return this.finishBlock();
      if (c0 === 0x30 /* 0 */ && b[s + 1] === 0x78 /* x */) return this.insnLine(b, s, e);
      this.finishBlock();
    }
    if (c0 === 0x54 /* T */ && b[s + 1] === 0x72 && b[s + 5] === SPACE) return this.traceLine(b, s, e);
    if (e === s) return;
    if (c0 === 0x49 /* I */ && b[s + 1] === 0x4e && b[s + 2] === 0x3a /* IN: */) {
      this.preamble = false;
      this.inBlock = true;
      this.tbCount = 0;
      this.tbByteCount = 0;
      return;
    }
    if (c0 >= 0x30 && c0 <= 0x39) return this.digitLine(b, s, e);
    if (c0 === 0x53 /* S */ && !this.preamble) {
      const m = /^Stopped execution of TB chain before 0x([0-9a-f]{1,16}) \[([0-9a-f]{1,16})\]/.exec(b.toString('latin1', s, Math.min(e, s + 120)));
      if (m) return this.sink.notExecuted(parseInt(m[1], 16), Number(BigInt.asIntN(64, BigInt(`0x${m[2]}`))));
    }
    if (c0 === 0x2d /* - */) {
      if (b[s + 1] === 0x2d && b[s + 2] === 0x2d && b[s + 3] === SPACE) return this.signalLine(b, s, e);
      if (e - s === SEPARATOR.length && b.toString('latin1', s, e) === SEPARATOR) return;
    }
    if (this.preamble) {
      // qemu's start-up output: the layout dump, page tables, messages.
      if (c0 >= 0x61 && c0 <= 0x7a) {
        const m = /^([a-z_]+)\s+0x([0-9a-fA-F]+)$/.exec(b.toString('latin1', s, e));
        if (m && LAYOUT_KEYS.has(m[1])) this.sink.layout(m[1], parseInt(m[2], 16));
      }
      return;
    }
    if (c0 === SPACE && b[s + 1] === 0x3d /* = */) this.tampered('a syscall result with no syscall', b, s, e);
    this.tampered('an unexpected line', b, s, e);
  }

  /** `PID name(args) = result`, `PID name(args)` (result to come), `PID Unknown syscall N`, or a page-table row. */
  private digitLine(b: Buffer, s: number, e: number): void {
    let i = s;
    while (i < e && HEX[b[i]] >= 0) i++;
    if (b[i] === 0x2d /* - */) {
      if (!this.preamble) this.tampered('a page-table row outside an mmap', b, s, e);
      return;
    }
    if (b[i] !== SPACE) {
      if (!this.preamble) this.tampered('an unexpected line', b, s, e);
      return;
    }
    const pid = b.toString('latin1', s, i);
    if (!/^\d+$/.test(pid)) this.tampered('an unexpected line', b, s, e);
    if (this.pid === null) this.pid = pid;
    else if (pid !== this.pid) this.tampered(`a syscall of another process (pid ${pid}, not ${this.pid})`, b, s, e);
    let text = b.toString('latin1', i + 1, e);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.startsWith('Unknown syscall ')) return this.sink.syscall(text);
    const paren = text.indexOf('(');
    if (paren <= 0 || !/^[a-z_0-9]+$/.test(text.slice(0, paren))) this.tampered('an unexpected line', b, s, e);
    this.sink.syscallEntry?.(text.slice(0, paren), text);
    if (this.halted) return;
    const cut = text.indexOf('page layout changed following ');
    if (cut >= 0) {
      this.pending = { text: text.slice(0, cut), pageDump: true };
      return;
    }
    if (RESULT.test(text)) return this.sink.syscall(text);
    this.pending = { text: text.slice(0, MAX_SYSCALL_TEXT), pageDump: false };
  }

  /** A line while a syscall runs: its page dump, the rest of its text, or its result. */
  private pendingLine(b: Buffer, s: number, e: number): void {
    const p = this.pending!;
    let text = b.toString('latin1', s, e);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (p.pageDump) {
      if (PAGE_ROW.test(text) || PAGE_HEADER.test(text) || /^page layout changed following \w+$/.test(text)) return;
      if (/^ = (?:0x[0-9a-fA-F]+|-\d+|-1 errno=\d+ \(.*\))$/.test(text)) {
        this.pending = null;
        return this.sink.syscall(p.text + text);
      }
      this.tampered('an unexpected line in the page dump of an mmap', b, s, e);
    }
    if (RESULT_LINE.test(text)) {
      this.pending = null;
      return this.sink.syscall(p.text.split('\n')[0] + text);
    }
    // The syscall's strings may hold newlines: everything up to the result is
    // its text. A line there that looks like one of qemu's is a string made
    // to pass for the log (or a result that never came): a forgery.
    if (LOG_LINE.test(text)) this.tampered('a line of the emulator\'s kind inside the text of a syscall', b, s, e);
    if (p.text.length < MAX_SYSCALL_TEXT) p.text = (p.text + '\n' + text).slice(0, MAX_SYSCALL_TEXT);
    if (RESULT.test(text)) {
      this.pending = null;
      const result = RESULT.exec(text)![0];
      this.sink.syscall(p.text.endsWith(result) ? p.text : p.text + result.slice(1));
    }
  }

  private signalLine(b: Buffer, s: number, e: number): void {
    const text = b.toString('latin1', s, e);
    const m = /^--- (SIG[A-Z0-9+-]+) \{([^}]*)\} ---$/.exec(text);
    if (!m) {
      if (!this.preamble) this.tampered('an unexpected line', b, s, e);
      return;
    }
    const code = /si_code=(-?\d+)/.exec(m[2]);
    const addr = /si_addr=(0x[0-9a-fA-F]{1,16}|NULL)/.exec(m[2]);
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
