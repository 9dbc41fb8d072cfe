/**
 * The options `worker`, `submit` and `jobs` share: which Redis (`--redis`,
 * or PTSCOPE_REDIS_URL so that a password stays out of `ps`), which queue,
 * and the store.
 */
import type { Command } from 'commander';
import { DEFAULT_QUEUE } from '../fleet/queue.js';
import { parseRedisUrl, redactRedisUrl, RedisUrlError, type RedisTarget } from '../fleet/redis-url.js';
import { Store } from '../fleet/store.js';
import { InputError } from '../sources/import/safe-files.js';
import { CliError } from './output.js';

export const REDIS_ENV = 'PTSCOPE_REDIS_URL';

export interface FleetCliOptions {
  redis?: string;
  queue: string;
}

export function withFleetOptions(cmd: Command): Command {
  return cmd
    .option('--redis <url>', `the fleet's Redis: redis://[:PASSWORD@]HOST[:PORT][/DB] (default: $${REDIS_ENV}); a password is required unless HOST is this machine`)
    .option('--queue <name>', 'queue name (fleets sharing one Redis use different names)', DEFAULT_QUEUE);
}

export const FLEET_HELP = `
The Redis URL may carry a password; pass it in $${REDIS_ENV} rather than on the
command line, where other users of the machine can read it (ps). Messages show
the URL with the password replaced by ***.`;

export function redisTarget(o: FleetCliOptions): RedisTarget {
  const url = o.redis ?? process.env[REDIS_ENV];
  if (url === undefined || url === '') throw new CliError(`no Redis given: pass --redis URL or set ${REDIS_ENV}.`);
  if (!/^[A-Za-z0-9_.:-]{1,100}$/.test(o.queue)) throw new CliError(`--queue: expected letters, digits and _.:- (got '${o.queue.slice(0, 40)}').`);
  try {
    return parseRedisUrl(url);
  } catch (e) {
    if (e instanceof RedisUrlError) throw new CliError(e.message);
    throw e;
  }
}

export function openStore(dir: string | undefined): Store {
  if (dir === undefined) throw new CliError('no store given: pass --store DIR (the directory every machine of the fleet shares).');
  try {
    return new Store(dir);
  } catch (e) {
    if (e instanceof InputError) throw new CliError(e.message);
    throw e;
  }
}

/**
 * Run the Redis part of a command: an input error stays one line; any other
 * failure (Redis unreachable, a wrong password) becomes one line naming the
 * URL without its password.
 */
export async function atRedis<T>(o: FleetCliOptions, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof CliError) throw e;
    if (e instanceof InputError) throw new CliError(e.message);
    const why = e instanceof Error ? e.message.split('\n')[0]! : String(e);
    throw new CliError(`redis ${redactRedisUrl(o.redis ?? process.env[REDIS_ENV] ?? '')}: ${why}`);
  }
}
