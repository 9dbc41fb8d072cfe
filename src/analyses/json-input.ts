/**
 * Reading the JSON files a user hands to the analyses (policies, models):
 * bounded in size, regular files only, parsed, then checked against a zod
 * schema whose first complaint becomes one line naming the field
 * (`cfi.allow[0].to: must be a "0x..." address`).
 */
import { closeSync, fstatSync, openSync, readSync, constants } from 'node:fs';
import type { z } from 'zod';

/** Largest JSON input read (a policy of a large program is a few MB). */
export const MAX_JSON_BYTES = 256 << 20;

/** `a.b[0].c` for a zod issue path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** The first issue of a failed parse as one line: `field: message` (or the message alone at the top level). */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'invalid';
  const where = fieldPath(issue.path);
  const message = issue.message.replace(/\s+/g, ' ');
  return where === '' ? message : `${where}: ${message}`;
}

/**
 * Read `path` as JSON: a regular file of at most {@link MAX_JSON_BYTES}.
 * `fail(why)` builds the error to throw (one line, without the path).
 */
export function readJsonFile(path: string, fail: (why: string) => Error): unknown {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw fail(`cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw fail('not a regular file');
    if (st.size > MAX_JSON_BYTES) throw fail(`${st.size} bytes is more than the ${MAX_JSON_BYTES} a JSON input may have`);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, n);
      if (r <= 0) break;
      n += r;
    }
    text = buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw fail(`not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}
