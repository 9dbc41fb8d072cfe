/**
 * `report --dormant FILE`: dormant-code results to attach to a report,
 * either `ptscope dormant --json` output (regions) or a plain
 * {"source", "triggers": [...]} document. The file is input like any other:
 * checked against a schema, size-bounded, errors name the field.
 */
import { z } from 'zod';
import { fieldName, readJsonFile } from '../sources/import/json-input.js';
import type { DormantSection, DormantTrigger } from '../reports/report-model.js';
import { CliError } from './output.js';

const text = z.string().max(1 << 16);
const many = <T extends z.ZodTypeAny>(t: T) => z.array(t).max(100_000);

const region = z.object({
  function: text.optional(),
  target: text.optional(),
  entries: many(text).optional(),
  guard: text.nullable().optional(),
  status: text.optional(),
  reason: text.nullable().optional(),
  trigger: many(z.object({ call: text.optional(), values: many(z.object({ symbol: text.optional(), value: text.optional() })).optional() })).optional(),
  constraints: many(text).optional(),
  proof: z.object({ targetRan: z.boolean().optional() }).nullable().optional(),
});

const dormantReport = z.object({ regions: many(region), regionsFound: z.number().int().min(0).optional() });

const triggerList = z.object({
  source: text.optional(),
  triggers: many(z.object({
    function: text.optional(),
    address: text.optional(),
    guard: text.nullable().optional(),
    condition: text.optional(),
    input: text.nullable().optional(),
    confirmed: z.boolean().nullable().optional(),
    notes: many(text).optional(),
  })),
  notes: many(text).optional(),
});

function regionTrigger(r: z.infer<typeof region>): DormantTrigger {
  const calls = (r.trigger ?? []).map((c) => `${c.call ?? '?'} returns ${(c.values ?? []).map((v) => `${v.symbol ?? '?'}=${v.value ?? '?'}`).join(', ')}`);
  const condition = calls.length > 0 ? calls.join(' and ') : (r.constraints ?? []).join(' && ') || (r.reason ?? 'no condition found');
  return {
    function: r.function ?? '?',
    address: r.target ?? r.entries?.[0] ?? '?',
    guard: r.guard ?? null,
    condition,
    input: null,
    confirmed: r.proof ? r.proof.targetRan === true : r.status === 'proven' ? true : null,
    notes: [r.status ?? 'unknown', ...(r.reason ? [r.reason] : [])],
  };
}

/** Read and check a dormant results file. Throws CliError with one line. */
export function readDormantFile(path: string): DormantSection {
  let doc: unknown;
  try {
    doc = readJsonFile(path, `--dormant ${path}`);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const fail = (issue: z.core.$ZodIssue): never => {
    throw new CliError(`--dormant ${path}: ${fieldName(issue.path)}: ${issue.message}`);
  };
  if (doc !== null && typeof doc === 'object' && 'regions' in doc) {
    const r = dormantReport.safeParse(doc);
    if (!r.success) return fail(r.error.issues[0]!);
    const triggers = r.data.regions.map(regionTrigger);
    const found = r.data.regionsFound ?? triggers.length;
    return { source: 'ptscope dormant', triggers: { items: triggers, total: triggers.length }, notes: [`${found} dormant regions found, ${triggers.length} analysed`] };
  }
  const r = triggerList.safeParse(doc);
  if (!r.success) {
    if (doc === null || typeof doc !== 'object' || !('triggers' in doc)) {
      throw new CliError(`--dormant ${path}: expected 'ptscope dormant --json' output or an object with a "triggers" array.`);
    }
    return fail(r.error.issues[0]!);
  }
  const triggers: DormantTrigger[] = r.data.triggers.map((t) => ({
    function: t.function ?? '?',
    address: t.address ?? '?',
    guard: t.guard ?? null,
    condition: t.condition ?? '',
    input: t.input ?? null,
    confirmed: t.confirmed ?? null,
    notes: t.notes ?? [],
  }));
  return { source: r.data.source ?? path, triggers: { items: triggers, total: triggers.length }, notes: r.data.notes ?? [] };
}
