import { writeSync } from 'node:fs';

/**
 * Buffered line output to a file descriptor. Writes synchronously in large
 * chunks (fast for millions of lines, and ordered with any diagnostics).
 * A closed pipe (EPIPE, e.g. `| head`) ends output quietly.
 */
export class LineWriter {
  private parts: string[] = [];
  private length = 0;
  closed = false;

  /** Text collected when writing to memory (fd is null), e.g. in tests. */
  text = '';

  constructor(private readonly fd: number | null = 1, private readonly limit = 1 << 16) {}

  line(text: string): void {
    if (this.closed) return;
    this.parts.push(text, '\n');
    this.length += text.length + 1;
    if (this.length >= this.limit) this.flush();
  }

  /** Text already encoded as UTF-8, whole lines with their newlines (written after what is buffered). */
  bytes(data: Uint8Array): void {
    if (this.closed) return;
    this.flush();
    if (this.closed) return;
    if (this.fd === null) {
      this.text += textDecoder.decode(data);
      return;
    }
    this.writeAll(data);
  }

  flush(): void {
    if (this.closed || this.parts.length === 0) return;
    const data = this.parts.join('');
    this.parts = [];
    this.length = 0;
    if (this.fd === null) {
      this.text += data;
      return;
    }
    try {
      let buf = Buffer.from(data, 'utf8');
      while (buf.length > 0) {
        const n = writeSync(this.fd, buf);
        buf = buf.subarray(n);
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPIPE') {
        this.closed = true;
        return;
      }
      if (code === 'EAGAIN') {
        // Non-blocking pipe is full: retry until it drains.
        this.parts.push(data);
        this.length = data.length;
        return this.flushBlocking();
      }
      this.closed = true;
      throw writeError(e);
    }
  }

  private flushBlocking(): void {
    if (this.fd === null) return;
    const data = this.parts.join('');
    this.parts = [];
    this.length = 0;
    this.writeAll(Buffer.from(data, 'utf8'));
  }

  /** Write all of `buf`, waiting out a full non-blocking pipe. */
  private writeAll(buf: Uint8Array): void {
    while (buf.length > 0) {
      try {
        buf = buf.subarray(writeSync(this.fd!, buf));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') continue;
        if (code === 'EPIPE') {
          this.closed = true;
          return;
        }
        this.closed = true;
        throw writeError(e);
      }
    }
  }
}

const textDecoder = new TextDecoder();

/** Output that cannot be written (a full disk, `> /dev/full`): one line, exit status 2, no more output. */
function writeError(e: unknown): CliError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOSPC' ? 'no space left on the device' : err.code === 'EIO' ? 'input/output error' : (err.code ?? err.message);
  return new CliError(`cannot write the output: ${why}`);
}

/** A usage or input error: printed as one line, exit status 2. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'CliError';
  }
}
