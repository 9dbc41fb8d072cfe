/**
 * Progress bars on stderr for long decodes (cli-progress), shown only when
 * stderr is a terminal and `--quiet` was not given: pipes, CI logs and
 * redirected output stay clean.
 *
 * The decoders run synchronously, so the bar redraws from `update` calls
 * (cli-progress's synchronous mode), not from a timer.
 */
import cliProgress from 'cli-progress';
import type { ProgressSink } from '../reports/report-model.js';

/** Traces smaller than this decode in a blink: no bar. */
const MIN_BYTES = 1 << 20;

class BarProgress implements ProgressSink {
  private bar: cliProgress.SingleBar | null = null;

  constructor(private readonly label: string) {}

  phase(name: string, total: number): void {
    this.done();
    const known = total > 0;
    this.bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: known ? `${this.label} ${name.padEnd(9)} [{bar}] {percentage}% | {value}/{total} MiB | ETA {eta_formatted}` : `${this.label} ${name.padEnd(9)} ...`,
        barsize: 30,
        hideCursor: true,
        clearOnComplete: true,
        synchronousUpdate: true,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? (v / (1 << 20)).toFixed(1) : String(v)),
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(known ? total : 1, 0);
  }

  update(done: number): void {
    this.bar?.update(done);
  }

  done(): void {
    if (this.bar !== null) {
      this.bar.stop();
      this.bar = null;
    }
  }
}

/**
 * A progress sink for a trace of `traceBytes`, or undefined when no bar
 * should show (quiet, stderr not a TTY, or a small trace).
 */
export function createProgress(label: string, traceBytes: number, quiet: boolean): ProgressSink | undefined {
  if (quiet || !process.stderr.isTTY || traceBytes < MIN_BYTES) return undefined;
  return new BarProgress(label);
}
