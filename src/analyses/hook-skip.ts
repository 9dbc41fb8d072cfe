/**
 * Hook skipping: malware that wants to call a monitored function without
 * triggering the inline hook at its entry jumps to entry+N, past the hook.
 *
 * Given the monitored functions (`--monitor name,module!name,...`, resolved
 * through the modules' symbol tables to [entry, entry+size)), a transfer
 * from outside a monitored function into its body (not its entry) is a
 * finding, unless control passed through the entry first: a legitimate
 * hook's trampoline runs the displaced instructions and then jumps to
 * entry+N, after the hooked entry was executed. Returns into the body are
 * ordinary returns from callees and are left to the return checks.
 */
import { EventType, type PtEvent } from '../events/event.js';
import { TransferKind, TRANSFER_NAMES } from '../flow/control-flow.js';
import { DetectorBase, cr3Text, type DetectorContext } from './detector-base.js';
import { RecentCalls } from './evidence.js';
import { hexAddress } from './finding.js';
import { lastAtOrBelow } from '../flow/sorted-search.js';

interface Monitored {
  name: string;
  entry: number;
  end: number;
  /** Control passed the entry since the last body entry. */
  armed: boolean;
  /** Whether this detector has set or cleared `armed` (a segment summary hands over only those). */
  touched: boolean;
}

function arm(f: Monitored, armed: boolean): void {
  f.armed = armed;
  f.touched = true;
}

export class HookSkipDetector extends DetectorBase {
  readonly parameters: Readonly<Record<string, string>>;
  private readonly funcs: Monitored[] = [];
  private readonly starts: Float64Array;
  private readonly calls = new RecentCalls(8);

  constructor(ctx: DetectorContext) {
    super('hook-skip', ctx);
    for (const spec of ctx.monitor) this.resolve(spec);
    this.funcs.sort((a, b) => a.entry - b.entry);
    this.starts = Float64Array.from(this.funcs, (f) => f.entry);
    this.parameters = { monitor: ctx.monitor.join(',') };
    if (ctx.monitor.length === 0) this.log.note('no monitored functions given (--monitor): nothing checked', 0);
  }

  private resolve(spec: string): void {
    const bang = spec.indexOf('!');
    const modName = bang >= 0 ? spec.slice(0, bang) : null;
    const sym = bang >= 0 ? spec.slice(bang + 1) : spec;
    let found = false;
    for (const m of this.ctx.modules.modules) {
      if (m.elf === null || (modName !== null && m.name !== modName)) continue;
      for (const s of m.elf.symbols) {
        if (s.name !== sym || s.size === 0 || (s.type !== 2 && s.type !== 10)) continue;
        const entry = s.value + m.bias;
        if (this.funcs.some((f) => f.entry === entry)) continue;
        this.funcs.push({ name: `${m.name}!${s.name}`, entry, end: entry + s.size, armed: false, touched: false });
        found = true;
      }
    }
    if (!found) this.log.note(`monitored function ${spec} not found in any module's symbols`, 0);
  }

  /** The monitored function containing `ip`, or null. */
  private at(ip: number): Monitored | null {
    const i = lastAtOrBelow(this.starts, ip);
    if (i < 0) return null;
    const f = this.funcs[i];
    return ip < f.end ? f : null;
  }

  onTransfer(kind: TransferKind, from: number, to: number, _size: number, _n: number, cr3: number): void {
    if (kind === TransferKind.DirectCall || kind === TransferKind.IndirectCall) this.calls.push(from, to);
    if (this.funcs.length === 0 || Number.isNaN(to)) return;
    const src = this.at(from);
    if (src !== null && from === src.entry) arm(src, true); // the hook's own jump at the entry
    const f = this.at(to);
    if (f === null) return;
    if (to === f.entry) {
      arm(f, true);
      return;
    }
    if (src === f || kind === TransferKind.Return || kind === TransferKind.CondNotTaken) return;
    if (f.armed) {
      arm(f, false);
      return;
    }
    const ev = this.ctx.evidence;
    this.report({
      detector: this.name,
      kind: 'hook-skip',
      severity: 'high',
      message: `${TRANSFER_NAMES[kind]} into ${f.name}+0x${(to - f.entry).toString(16)} without passing its entry ${hexAddress(f.entry)}`,
      offset: this.ctx.offset(),
      cr3: cr3Text(cr3),
      transfer: ev.transfer(kind, from, to),
      callPath: ev.calls(this.calls),
      chain: null,
      details: { function: f.name, entry: hexAddress(f.entry), skipped: to - f.entry },
    });
  }

  onEvent(ev: PtEvent): void {
    // Tracing resumed inside a monitored body we did not see entered.
    if (ev.type !== EventType.Enabled || ev.statusUpdate || ev.ipSuppressed) return;
    const f = this.at(ev.ip);
    if (f !== null && ev.ip !== f.entry && !f.armed) {
      this.log.note(`tracing resumed inside ${f.name}: how control got there is not in the trace`, this.ctx.offset());
    }
  }
}
