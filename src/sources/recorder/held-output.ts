/**
 * The program's output during a one-log recording that may be recorded
 * again (record.ts: a program that starts a thread or process is recorded
 * a second time, with one log per thread). Its output is held, not shown,
 * so that the analyst does not see the part before the first clone twice:
 * released when that run is the recording, dropped when it is run again.
 * Past `limit` bytes it is released and passes through from then on.
 */
export class HeldOutput {
  private chunks: Array<{ fd: 1 | 2; bytes: Buffer }> = [];
  private held = 0;
  /** The output passes through (released, or past the limit). */
  private passing = false;
  /** Some output was shown before the run was dropped. */
  shownThenDropped = false;

  constructor(
    private readonly limit: number,
    private readonly emit: (fd: 1 | 2, bytes: Buffer) => void = (fd, b) => (fd === 1 ? process.stdout : process.stderr).write(b),
  ) {}

  write(fd: 1 | 2, bytes: Buffer): void {
    if (this.passing) return this.emit(fd, bytes);
    this.chunks.push({ fd, bytes });
    this.held += bytes.length;
    if (this.held > this.limit) this.release();
  }

  /** This run is the recording: show what was held, and pass the rest through. */
  release(): void {
    for (const c of this.chunks) this.emit(c.fd, c.bytes);
    this.chunks = [];
    this.held = 0;
    this.passing = true;
  }

  /** This run is recorded again: forget what was held. */
  drop(): void {
    if (this.passing) this.shownThenDropped = true;
    this.chunks = [];
    this.held = 0;
  }
}
