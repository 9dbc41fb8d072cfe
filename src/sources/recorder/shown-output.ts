/**
 * The program's output when record() may run it twice (a first, one-log
 * run that stops at the first thread or fork, then a run with a log per
 * thread). The first run's output is shown as it comes (a program may be
 * interactive: a driver reads its prompt before it writes the answer) and
 * kept, up to a bound; the second run's output is shown from where it
 * stops repeating the first's, so the part before the first clone is shown
 * once. Standard output and standard error are matched separately.
 */
export class ShownOutput {
  private readonly kept: [Buffer[], Buffer[]] = [[], []];
  private readonly keptBytes = [0, 0];
  /** More was shown than kept: the second run may show some again. */
  overflowed = false;
  /** The second run's output differed from the first's before the first's ended. */
  diverged = false;
  private second: { chunk: number[]; at: number[]; done: boolean[] } | null = null;

  constructor(
    private readonly limit: number,
    private readonly emit: (fd: 1 | 2, bytes: Buffer) => void = (fd, b) => (fd === 1 ? process.stdout : process.stderr).write(b),
  ) {}

  /** Output of the current run. */
  write(fd: 1 | 2, bytes: Buffer): void {
    const i = fd - 1;
    if (this.second === null) {
      this.emit(fd, bytes);
      if (this.keptBytes[i] + bytes.length <= this.limit) {
        this.kept[i].push(bytes);
        this.keptBytes[i] += bytes.length;
      } else {
        this.overflowed = true;
      }
      return;
    }
    this.emit(fd, bytes.subarray(this.skipRepeated(i, bytes)));
  }

  /** The program is run again: from now on, output that repeats the first run's is not shown again. */
  rerun(): void {
    this.second = { chunk: [0, 0], at: [0, 0], done: [false, false] };
  }

  /** How many leading bytes of `bytes` repeat the first run's output (and so are skipped). */
  private skipRepeated(i: number, bytes: Buffer): number {
    const s = this.second!;
    let n = 0;
    while (!s.done[i] && n < bytes.length) {
      const c = this.kept[i][s.chunk[i]];
      if (c === undefined) {
        s.done[i] = true;
        break;
      }
      if (c[s.at[i]] !== bytes[n]) {
        s.done[i] = true;
        this.diverged = true;
        break;
      }
      n++;
      if (++s.at[i] === c.length) {
        s.chunk[i]++;
        s.at[i] = 0;
      }
    }
    return n;
  }
}
