/**
 * A real `redis-server` (Debian's package) for the fleet tests and the
 * fleet benchmark (tools/bench-fleet.ts): on a free local port, with its
 * data in a given directory, the append-only file on and fsynced at every
 * write, so that a restart (even after SIGKILL) keeps every acknowledged
 * job. Never a mock: a missing redis-server is an error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1 (the kernel's choice, released for the server). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export class RedisServer {
  private proc: ChildProcess | null = null;
  log = '';

  constructor(
    readonly dir: string,
    readonly port: number,
    /** A password clients must give (`requirepass`), or none. */
    readonly password: string | null = null,
  ) {}

  get url(): string {
    return `redis://${this.password !== null ? `:${encodeURIComponent(this.password)}@` : ''}127.0.0.1:${this.port}`;
  }

  /** Start (or restart on the same data) and wait until it accepts connections. */
  async start(): Promise<void> {
    this.log = '';
    const proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes', ...(this.password !== null ? ['--requirepass', this.password] : [])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start in 30 s:\n${this.log}`)), 30_000);
      proc.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run redis-server (install Debian's redis-server: scripts/install-test-deps.sh): ${e.message}`));
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}):\n${this.log}`));
      });
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
        this.log += d;
        if (/Ready to accept connections/.test(this.log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.stderr!.setEncoding('utf8').on('data', (d: string) => (this.log += d));
    });
  }

  /** Stop with `signal` (SIGKILL: a crash; only the append-only file survives) and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (proc === null || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.removeAllListeners('exit');
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await exited;
    this.proc = null;
  }
}
