/**
 * Enqueueing work: single jobs with `Queue.add`, and a large trace as a
 * BullMQ flow (`FlowProducer.add`): a `decode` parent with one `segment`
 * child per segment group, cut at PSBs by the segment decoder's plan. The
 * parent runs once every child has completed; a child that fails for good
 * fails the parent.
 *
 * Job data is checked against its kind's schema here too, so a bad
 * submission fails at once instead of in a worker.
 */
import { FlowProducer, Queue } from 'bullmq';
import { traceInputs } from '../analyses/trace-input.js';
import { openRecording } from '../sources/import/open-recording.js';
import { InputError } from '../sources/import/safe-files.js';
import { JOB_SCHEMAS, jobDataError, type JobInput, type JobKind } from './job-types.js';
import { jobOptions, type RetryPolicy } from './queue.js';
import { clientConnection, type RedisTarget } from './redis-url.js';
import { jobsRefusal } from '../analyses/summaries/summary.js';
import { planSegments } from './segment-decoder.js';
import type { Store } from './store.js';

/** A job to enqueue. */
export interface JobRequest<K extends JobKind = JobKind> {
  kind: K;
  data: JobInput<K>;
}

export interface SubmittedJob {
  id: string;
  kind: JobKind;
  /** For a flow's parent: its children's ids. */
  children: string[];
}

function check<K extends JobKind>(r: JobRequest<K>): void {
  const parsed = JOB_SCHEMAS[r.kind].safeParse(r.data);
  if (!parsed.success) throw new InputError(jobDataError(r.kind, parsed.error));
}

/** How many segment groups: a number, or one group per `segmentBytes` of trace. */
export interface SegmentSizing {
  groups?: number;
  segmentBytes: number;
}

/**
 * The `decode` flows of one recording: every non-empty stream cut into
 * segment groups. Reads the recording from the store (the submitter sees
 * the same store as the workers).
 */
export function planDecode(store: Store, input: string, sizing: SegmentSizing, detectors?: string[]): { parent: JobRequest<'decode'>; children: JobRequest<'segment'>[] }[] {
  const refusal = detectors && detectors.length > 0 ? jobsRefusal(detectors) : null;
  if (refusal !== null) throw new InputError(refusal);
  const rel = store.input(input, 'input');
  const recording = openRecording(`${store.root}/${rel}`);
  try {
    return traceInputs(recording).map((ti) => {
      const groups = sizing.groups ?? Math.max(1, Math.ceil(ti.stream.size / sizing.segmentBytes));
      const ranges = planSegments(ti.stream, groups);
      return {
        parent: { kind: 'decode', data: { input: rel, stream: ti.stream.index, segments: ranges.length, detectors } },
        children: ranges.map((r) => ({ kind: 'segment', data: { input: rel, stream: ti.stream.index, index: r.index, from: r.from, to: r.to, limit: r.limit, detectors } })),
      };
    });
  } finally {
    recording.close();
  }
}

/** A connection to the queue for submitting; close it when done. */
export class Submitter {
  private readonly queue: Queue;
  private flows: FlowProducer | null = null;

  constructor(
    private readonly redis: RedisTarget,
    private readonly queueName: string,
    private readonly retry: RetryPolicy,
  ) {
    const c = clientConnection(redis);
    this.queue = new Queue(queueName, { connection: c.options });
    // Connection errors reach the caller as rejected commands.
    this.queue.on('error', c.onError);
  }

  async add(r: JobRequest): Promise<SubmittedJob> {
    check(r);
    const job = await this.queue.add(r.kind, r.data, jobOptions(this.retry));
    return { id: String(job.id), kind: r.kind, children: [] };
  }

  async addFlow(parent: JobRequest<'decode'>, children: JobRequest<'segment'>[]): Promise<SubmittedJob> {
    check(parent);
    for (const c of children) check(c);
    if (this.flows === null) {
      const c = clientConnection(this.redis);
      this.flows = new FlowProducer({ connection: c.options });
      this.flows.on('error', c.onError);
    }
    const node = await this.flows.add({
      name: parent.kind,
      queueName: this.queueName,
      data: parent.data,
      opts: jobOptions(this.retry),
      children: children.map((c) => ({
        name: c.kind,
        queueName: this.queueName,
        data: c.data,
        opts: { ...jobOptions(this.retry), failParentOnFailure: true },
      })),
    });
    return { id: String(node.job.id), kind: 'decode', children: (node.children ?? []).map((c) => String(c.job.id)) };
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.flows?.close();
  }
}
