// Fix two defects of the vectors' libipt in a copy of its sources (the
// folder given), for tools/conformance/ptxed-differential.ts: with them
// fixed, ptxed must print what ptscope prints where the differential
// counts a known libipt defect. Each fix must apply exactly once.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2];
if (!root) {
  console.error('usage: node libipt-fixes.mjs LIBIPT-SRC-COPY');
  process.exit(2);
}

const fixes = [
  {
    // pt_evt_decode_tip_event: the async-branch pointer from pt_evq_find is
    // stale once pt_evq_dequeue has moved the entries before the one it
    // returns; find it again after the dequeue.
    file: 'libipt/src/pt_event_decoder.c',
    from: `		/* Swap the asynchronous branch event with the first event. */
		if (ev != async) {
			struct pt_event tmp;

			tmp = *async;`,
    to: `		/* Swap the asynchronous branch event with the first event. */
		if (ev->type != ptev_async_branch) {
			struct pt_event tmp;

			async = pt_evq_find(&decoder->evq, evb_tip,
					    ptev_async_branch);
			if (!async)
				return -pte_internal;

			tmp = *async;`,
  },
  // pt_blk_proceed_event: a SYSCALL or INT event whose IP is where the
  // decoder stands crosses no instruction, so there is none to postpone
  // (libipt postponed its uninitialised pt_insn).
  ...['swintr', 'syscall'].map((kind) => ({
    file: 'libipt/src/pt_block_decoder.c',
    from: `		status = pt_blk_proceed_to_${kind}(decoder, block, &insn,`,
    to: `		if (!ev->ip_suppressed &&
		    (decoder->ip == ev->variant.${kind}.ip))
			break;

		status = pt_blk_proceed_to_${kind}(decoder, block, &insn,`,
  })),
];

for (const fix of fixes) {
  const path = join(root, fix.file);
  const text = readFileSync(path, 'utf8');
  const n = text.split(fix.from).length - 1;
  if (n !== 1) {
    console.error(`libipt-fixes: ${fix.file}: the text to fix occurs ${n} times, not once`);
    process.exit(1);
  }
  writeFileSync(path, text.replace(fix.from, fix.to));
}
