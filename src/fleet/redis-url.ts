/**
 * The Redis a fleet shares, given as a URL: `redis://[user][:password]@host[:port][/db]`,
 * or `rediss://...` for TLS.
 *
 * Whoever can write to that Redis can make every worker record programs
 * (confined) and read or write the store, so a Redis anywhere but on this
 * machine must require a password: a URL naming another host without one
 * is refused. The password is never printed: messages show the URL through
 * {@link redactRedisUrl}.
 */
import type { ConnectionOptions } from 'bullmq';

/** A Redis URL that cannot be used: one line, without the password. */
export class RedisUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUrlError';
  }
}

export interface RedisTarget {
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  db: number;
  tls: boolean;
}

/** Host names that reach only this machine. */
function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The URL with any password replaced by `***` (for logs and messages). */
export function redactRedisUrl(text: string): string {
  try {
    const u = new URL(text);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    // Not a URL: show nothing of it that could be a secret.
    return '<invalid Redis URL>';
  }
}

/** Parse and check a Redis URL. */
export function parseRedisUrl(text: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new RedisUrlError(`--redis: not a URL (expected redis://[:password@]host[:port][/db])`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new RedisUrlError(`--redis ${redactRedisUrl(text)}: expected a redis:// or rediss:// URL`);
  }
  if (u.hostname === '') throw new RedisUrlError(`--redis ${redactRedisUrl(text)}: no host`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const dbText = u.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : /^\d{1,2}$/.test(dbText) ? Number(dbText) : NaN;
  if (!Number.isInteger(db)) throw new RedisUrlError(`--redis ${redactRedisUrl(text)}: the database must be a number (/0 to /99)`);
  const password = u.password === '' ? undefined : decodeURIComponent(u.password);
  const username = u.username === '' ? undefined : decodeURIComponent(u.username);
  if (password === undefined && !isLoopback(u.hostname)) {
    throw new RedisUrlError(
      `--redis ${redactRedisUrl(text)}: a Redis on another host must require a password (redis://:PASSWORD@${u.host}); anyone who can write to it controls the workers`,
    );
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port, username, password, db, tls: u.protocol === 'rediss:' };
}

/** Reconnection attempts of a command-line client before it gives up (about 15 s). */
const CLIENT_RETRIES = 10;

/** Errors no reconnection can cure. */
const FATAL = /^(WRONGPASS|NOAUTH|NOPERM|ERR AUTH|ERR invalid password)/;

/**
 * ioredis options for a worker, which waits for Redis for as long as it
 * takes: its blocking connections need `maxRetriesPerRequest: null`, so a
 * command outlives a Redis restart instead of failing.
 */
export function connectionOptions(target: RedisTarget): ConnectionOptions {
  return { ...baseOptions(target), maxRetriesPerRequest: null };
}

/**
 * ioredis options for a command-line client (submit, jobs), which gives up
 * after a few reconnections, and at once on a refused password, so that a
 * wrong address or password ends in one line instead of a hang. Give the
 * connection's 'error' events to `onError`.
 */
export function clientConnection(target: RedisTarget): { options: ConnectionOptions; onError(e: Error): void } {
  let fatal = false;
  return {
    options: {
      ...baseOptions(target),
      connectTimeout: 10_000,
      maxRetriesPerRequest: CLIENT_RETRIES,
      retryStrategy: (times: number) => (fatal || times > CLIENT_RETRIES ? null : Math.min(times * 250, 2000)),
    },
    onError: (e) => {
      if (FATAL.test(e.message)) fatal = true;
    },
  };
}

function baseOptions(target: RedisTarget) {
  return {
    host: target.host,
    port: target.port,
    username: target.username,
    password: target.password,
    db: target.db,
    tls: target.tls ? {} : undefined,
  };
}
