import { describe, expect, it } from 'vitest';
import { EventType, PtEvent } from '../src/events/event.js';
import { Image } from '../src/flow/image.js';
import { CpuTaskTracker, type TaskFactory } from '../src/sources/import/cpu-tasks.js';
import type { CpuSwitch } from '../src/sources/perf-data/sideband.js';
import type { StreamTask } from '../src/sources/model/recording.js';

// time_mult 1 << 10 with shift 10: perf time == TSC.
const CONV = { timeShift: 10, timeMult: 1 << 10, timeZero: 0n };

function event(type: EventType, tsc: number | null, statusUpdate = false): PtEvent {
  const ev = new PtEvent();
  ev.type = type;
  ev.statusUpdate = statusUpdate;
  if (tsc !== null) {
    ev.hasTsc = true;
    ev.tscHi = Math.floor(tsc / 2 ** 32);
    ev.tscLo = tsc >>> 0;
  }
  return ev;
}

function tracker(switches: CpuSwitch[]): { t: CpuTaskTracker; made: string[] } {
  const made: string[] = [];
  const images = new Map<number, Image>();
  const tasks = new Map<string, StreamTask>();
  const factory: TaskFactory = (pid, tid, time) => {
    const key = `${pid}/${tid}`;
    let task = tasks.get(key);
    if (task === undefined) {
      let image = images.get(pid);
      if (image === undefined) images.set(pid, (image = new Image(`pid ${pid}`)));
      task = { pid, tid, image, mappings: [], name: null, life: { pid, tid, space: { pid, image, mappings: [], name: null }, inheritsHistory: false } };
      tasks.set(key, task);
      made.push(`${key}@${time}`);
    }
    return task;
  };
  return { t: new CpuTaskTracker(switches, CONV, factory), made };
}

const sw = (time: number, pid: number, tid: number, out: boolean, nextPrev: [number, number] | null = null): CpuSwitch => ({
  time: BigInt(time),
  pid,
  tid,
  out,
  nextPrev: nextPrev === null ? null : { pid: nextPrev[0], tid: nextPrev[1] },
});

const who = (t: StreamTask | null): string | null => (t === null ? null : `${t.pid}/${t.tid}`);

describe('per-CPU task tracker (context-switch sideband)', () => {
  it('starts in the task of the first record, and switches at the tracing enable after a due switch', () => {
    const { t } = tracker([sw(100, 10, 10, false), sw(500, 10, 10, true, [10, 11]), sw(501, 10, 11, false, [10, 10]), sw(900, 10, 11, true, [20, 20]), sw(901, 20, 20, false, [10, 11])]);
    expect(who(t.start())).toBe('10/10');
    // Events before the switch's time change nothing, and neither does a disable after it.
    expect(t.onEvent(event(EventType.Enabled, 200))).toBeNull();
    expect(t.onEvent(event(EventType.Disabled, 502))).toBeNull();
    // A PSB+ status update is no switch point.
    expect(t.onEvent(event(EventType.Enabled, 503, true))).toBeNull();
    expect(who(t.onEvent(event(EventType.Enabled, 600)))).toBe('10/11');
    expect(t.onEvent(event(EventType.Enabled, 700))).toBeNull();
    // An overflow is a switch point too (the trace lost where the task changed).
    expect(who(t.onEvent(event(EventType.Overflow, 950)))).toBe('20/20');
  });

  it('keeps the task while only its switch-out (no next task) is due, and ignores the idle task', () => {
    const { t } = tracker([sw(100, 10, 10, false), sw(200, 10, 10, true), sw(300, 0, 0, false), sw(400, 10, 12, false)]);
    expect(who(t.start())).toBe('10/10');
    expect(t.onEvent(event(EventType.Enabled, 250))).toBeNull();
    expect(t.onEvent(event(EventType.Enabled, 350))).toBeNull();
    expect(who(t.onEvent(event(EventType.Enabled, 450)))).toBe('10/12');
  });

  it('does not switch on events without a time, and returns the same task object for the same thread', () => {
    const { t, made } = tracker([sw(100, 10, 10, false), sw(200, 10, 11, false), sw(300, 10, 10, false)]);
    const first = t.start();
    expect(t.onEvent(event(EventType.Enabled, null))).toBeNull();
    expect(who(t.onEvent(event(EventType.Enabled, 250)))).toBe('10/11');
    expect(t.onEvent(event(EventType.Enabled, 350))).toBe(first);
    expect(made).toEqual(['10/10@100', '10/11@200']);
  });

  it('startAt: a decode from a PSB inside the stream starts in the task the records up to its time name, and goes on from there', () => {
    const switches = [sw(100, 10, 10, false), sw(500, 10, 10, true, [10, 11]), sw(501, 10, 11, false, [10, 10]), sw(700, 10, 11, true), sw(900, 20, 20, false)];
    // Before the second task came in; at its switch-in; after a switch-out with no next task (it stays the current one).
    expect(who(tracker(switches).t.startAt(300n))).toBe('10/10');
    expect(who(tracker(switches).t.startAt(501n))).toBe('10/11');
    expect(who(tracker(switches).t.startAt(800n))).toBe('10/11');
    // From there the switches go on at the next tracing enable after a due record, as in a decode from the start.
    const { t } = tracker(switches);
    expect(who(t.startAt(600n))).toBe('10/11');
    expect(t.onEvent(event(EventType.Enabled, 650))).toBeNull();
    expect(who(t.onEvent(event(EventType.Enabled, 950)))).toBe('20/20');
  });

  it('gives no task without a time conversion', () => {
    const t = new CpuTaskTracker([sw(100, 10, 10, false)], { timeShift: 0, timeMult: 0, timeZero: 0n }, () => {
      throw new Error('not asked');
    });
    expect(t.start()).toBeNull();
    expect(t.startAt(200n)).toBeNull();
    expect(t.onEvent(event(EventType.Enabled, 200))).toBeNull();
  });
});
