/** The states of a BullMQ job, as `ptscope jobs` lists them. */
export type JobStateName = 'waiting' | 'active' | 'delayed' | 'prioritized' | 'waiting-children' | 'completed' | 'failed' | 'unknown';

/** The states listed, in this order (running and queued work first). */
export const LISTED_STATES: readonly JobStateName[] = ['active', 'waiting', 'waiting-children', 'prioritized', 'delayed', 'failed', 'completed'];
