/**
 * JSON inputs (manifests, policies, models, dormant reports) are hostile:
 * each is read with a size bound and checked against one zod schema, and
 * a failure names the first bad field in one line.
 */
import type { z } from 'zod';
import { INPUT_LIMITS, InputError, readBoundedFile } from './safe-files.js';

/** `images[3].address` for a zod issue path. */
export function fieldName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(top level)' : out;
}

/** Check `json` against `schema`; throws InputError `<where>: <field>: <problem>`. */
export function checkJson<T extends z.ZodType>(json: unknown, schema: T, where: string): z.infer<T> {
  const r = schema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new InputError(`${where}: ${fieldName(issue.path)}: ${issue.message}`);
  }
  return r.data;
}

/** Read a JSON file (size-bounded, regular file only); throws InputError with one line. */
export function readJsonFile(path: string, where = path): unknown {
  const text = readBoundedFile(path, INPUT_LIMITS.jsonBytes, where).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new InputError(`${where}: not valid JSON`);
  }
}
