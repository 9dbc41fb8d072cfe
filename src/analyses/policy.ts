/**
 * The policy file shared by the policy-driven detectors (`--policy FILE`):
 * one JSON object with a section per detector.
 *
 *   {
 *     "format": "ptscope-policy", "version": 1,
 *     "cfi": { "modules": { "<module>": { "indirectTargets": ["0x..."], "returnSites": ["0x..."] } },
 *              "allow": [{ "from": "0x...", "to": "0x..." }] },
 *     "interModule": { "mode": "default" | "strict",
 *                      "rules": [{ "from": "prog", "to": "libc.so.6", "targets": ["puts", "0x1234", "*exports"] }] },
 *     "flowguard": { "edges": [["0x...", "0x...", credit], ...], "threshold": n }
 *   }
 *
 * Module addresses in "cfi.modules" are link-time (portable across load
 * addresses); "allow" edges are run-time addresses. A file that cannot be
 * read or parsed gives one line: `<file>: <what is wrong>`.
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { firstIssue, readJsonFile } from './json-input.js';

export const POLICY_FORMAT = 'ptscope-policy';
export const POLICY_VERSION = 1;

const HEX = /^0x[0-9a-f]{1,16}$/i;
/** Most entries in any one list of a policy (a large program has a few hundred thousand return sites). */
const MAX_LIST = 4_000_000;

/** A message for a value of the wrong type only (other issues keep zod's own message). */
const wrongType = (message: string) => ({ error: (iss: { code: string }) => (iss.code === 'invalid_type' ? message : undefined) });

const Address = z.string({ error: 'must be a "0x..." address' }).regex(HEX, { error: 'must be a "0x..." address' });
const AddressList = z.array(Address, wrongType('must be an array of "0x..." addresses')).max(MAX_LIST);

/** The schema of a policy file: unknown keys are refused, so a typo is not silently ignored. */
export const PolicySchema = z
  .object(
    {
      format: z.literal(POLICY_FORMAT, { error: `must be "${POLICY_FORMAT}" (this is not a ptscope policy)` }),
      version: z.literal(POLICY_VERSION, { error: (iss) => `policy version ${JSON.stringify(iss.input)} is not supported (this ptscope reads version ${POLICY_VERSION})` }),
      cfi: z
        .object(
          {
            modules: z
              .record(z.string(), z.object({ indirectTargets: AddressList.optional(), returnSites: AddressList.optional() }, wrongType('must be {"indirectTargets": [...], "returnSites": [...]}')).strict(), wrongType('must be an object of modules'))
              .optional(),
            allow: z.array(z.object({ from: Address, to: Address }, wrongType('must be {"from": "0x...", "to": "0x..."}')).strict(), wrongType('must be an array of {from, to}')).max(MAX_LIST).optional(),
          },
          wrongType('must be an object'),
        )
        .strict()
        .optional(),
      interModule: z
        .object(
          {
            mode: z.enum(['default', 'strict'], { error: 'must be "default" or "strict"' }).optional(),
            rules: z
              .array(
                z.object(
                  { from: z.string({ error: 'must be a module name' }), to: z.string({ error: 'must be a module name' }), targets: z.array(z.string({ error: 'must be a name or "0x..."' })).max(MAX_LIST) },
                  wrongType('must be {"from": module, "to": module, "targets": [names or "0x..."]}'),
                ).strict(),
                wrongType('must be an array'),
              )
              .max(MAX_LIST)
              .optional(),
          },
          wrongType('must be an object'),
        )
        .strict()
        .optional(),
      flowguard: z
        .object(
          {
            edges: z
              .array(z.tuple([Address, Address, z.number({ error: 'must be a credit from 0 to 1' }).min(0, { error: 'must be a credit from 0 to 1' }).max(1, { error: 'must be a credit from 0 to 1' })], { error: 'must be ["0x...", "0x...", credit]' }), wrongType('must be an array of ["0x...", "0x...", credit]'))
              .max(MAX_LIST)
              .optional(),
            threshold: z.number({ error: 'must be a number from 0 to 1' }).min(0, { error: 'must be a number from 0 to 1' }).max(1, { error: 'must be a number from 0 to 1' }).optional(),
          },
          wrongType('must be an object'),
        )
        .strict()
        .optional(),
    },
    wrongType('a policy must be a JSON object'),
  )
  .strict();

export type PolicyFile = z.infer<typeof PolicySchema>;
export type CfiModulePolicy = NonNullable<NonNullable<PolicyFile['cfi']>['modules']>[string];
export type InterModuleRule = NonNullable<NonNullable<PolicyFile['interModule']>['rules']>[number];

/** A malformed policy file: the message is one line. */
export class PolicyError extends Error {}

/** Read and validate a policy file. Throws PolicyError (one line, naming the field) when it is malformed. */
export function loadPolicy(path: string): PolicyFile {
  const doc = readJsonFile(path, (why) => new PolicyError(`${path}: ${why}`));
  const r = PolicySchema.safeParse(doc);
  if (!r.success) throw new PolicyError(`${path}: ${firstIssue(r.error)}`);
  return r.data;
}

/** Write a policy file (pretty JSON). */
export function savePolicy(path: string, policy: PolicyFile): void {
  writeFileSync(path, JSON.stringify(policy, null, 1) + '\n');
}

/** An empty policy to fill. */
export function emptyPolicy(): PolicyFile {
  return { format: POLICY_FORMAT, version: POLICY_VERSION };
}

/** Parse "0x..." (validated) to a number. */
export function parseHexAddress(s: string): number {
  return Number(BigInt.asIntN(64, BigInt(s)));
}
