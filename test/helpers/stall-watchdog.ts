/**
 * A watchdog for test files whose main thread stops turning its event loop.
 *
 * Vitest's test and hook timeouts are timers on the test file's own event
 * loop: a synchronous wait that never returns (a spawnSync whose pipes a
 * stray process keeps open, a busy loop, a WASM thread's lock) blocks them
 * too, and the whole run then waits until CI's own limit. This file, loaded
 * before every test file (vitest.config.ts: setupFiles), starts a worker
 * thread that watches a heartbeat the main thread beats once a second. When
 * the beat stops for PTSCOPE_TEST_STALL_SEC seconds (300 by default, far
 * above any single synchronous step of the suite), the worker prints the
 * test that was running, the main thread's JavaScript stack when the
 * inspector can take it, and the processes below this one, then kills them
 * and this process. Vitest reports the file as failed and goes on, so the
 * run ends with the reason in its log instead of a silent timeout.
 */
import { Worker } from 'node:worker_threads';
import { beforeEach } from 'vitest';

const NAME_BYTES = 1024;
/** [0]: heartbeat counter, [1]: length of the name in bytes; the name follows. */
const shared = new SharedArrayBuffer(8 + NAME_BYTES);
const words = new Int32Array(shared, 0, 2);
const nameBytes = new Uint8Array(shared, 8, NAME_BYTES);

const stallSec = Number(process.env.PTSCOPE_TEST_STALL_SEC ?? '300');

function setRunning(name: string): void {
  const bytes = new TextEncoder().encode(name).subarray(0, NAME_BYTES);
  nameBytes.set(bytes);
  Atomics.store(words, 1, bytes.length);
}

// The watcher runs as plain JavaScript (eval) so that it needs no transform.
const watcher = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const { execFileSync } = require('node:child_process');
const inspector = require('node:inspector');
const words = new Int32Array(workerData.shared, 0, 2);
const names = new Uint8Array(workerData.shared, 8, ${NAME_BYTES});
const stallMs = workerData.stallSec * 1000;
const say = (text) => { try { writeSync(2, text); } catch {} };
let last = Atomics.load(words, 0);
let since = Date.now();

function descendants(pid) {
  let table = '';
  try { table = execFileSync('ps', ['-eo', 'pid=,ppid=,etime=,args='], { encoding: 'utf8', timeout: 10000 }); } catch { return []; }
  const rows = table.split('\\n').map((l) => l.trim().match(/^(\\d+)\\s+(\\d+)\\s+(\\S+)\\s+(.*)$/)).filter(Boolean);
  const out = [];
  const walk = (p, depth) => {
    for (const r of rows) if (Number(r[2]) === p && !r[4].startsWith('ps -eo')) { out.push({ pid: Number(r[1]), line: '  '.repeat(depth) + r[1] + ' ' + r[3] + ' ' + r[4].slice(0, 200) }); walk(Number(r[1]), depth + 1); }
  };
  walk(pid, 1);
  return out;
}

let fired = false;
function stackThenKill(name) {
  if (fired) return;
  fired = true;
  const finish = (stack) => {
    const procs = descendants(process.pid);
    say('\\nstall watchdog: ' + name + ': the main thread has not run its event loop for ' + workerData.stallSec + ' s\\n'
      + 'main thread stack: ' + (stack || '(not taken: the thread is in native code)') + '\\n'
      + 'processes below this test file (pid ' + process.pid + '):\\n' + (procs.map((p) => p.line).join('\\n') || '  (none)') + '\\n'
      + 'stall watchdog: killing them and this test file\\n');
    for (const p of procs.reverse()) { try { process.kill(p.pid, 'SIGKILL'); } catch {} }
    process.kill(process.pid, 'SIGKILL');
  };
  let session;
  try {
    session = new inspector.Session();
    session.connectToMainThread();
  } catch { finish(''); return; }
  const timer = setTimeout(() => finish(''), 10000);
  const urls = new Map();
  session.on('Debugger.scriptParsed', (m) => urls.set(m.params.scriptId, m.params.url));
  session.on('Debugger.paused', (m) => {
    clearTimeout(timer);
    const frames = m.params.callFrames.slice(0, 25).map((f) => '\\n    at ' + (f.functionName || '<anonymous>') + ' (' + (f.url || urls.get(f.location.scriptId) || '?') + ':' + (f.location.lineNumber + 1) + ')');
    finish(frames.join(''));
  });
  session.post('Debugger.enable', () => session.post('Debugger.pause'));
}

setInterval(() => {
  const beat = Atomics.load(words, 0);
  if (beat !== last) { last = beat; since = Date.now(); return; }
  if (Date.now() - since < stallMs) return;
  const n = Atomics.load(words, 1);
  const name = new TextDecoder().decode(names.slice(0, n)) || '(before the first test)';
  stackThenKill(name);
}, 2000);
`;

if (stallSec > 0) {
  const worker = new Worker(watcher, { eval: true, workerData: { shared, stallSec } });
  worker.unref();
  setInterval(() => Atomics.add(words, 0, 1), 1000).unref();
  beforeEach((ctx) => {
    setRunning(`${ctx.task.file?.name ?? ''} > ${ctx.task.name}`);
  });
}
