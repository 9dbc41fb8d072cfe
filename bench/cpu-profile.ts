/**
 * V8 CPU profiles as `node --cpu-prof` writes them (one .cpuprofile per
 * thread), for the profile-reading bench tools.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  /** Microseconds, on one clock for every thread of a process. */
  startTime: number;
  endTime: number;
}

/** The .cpuprofile files of DIR, by path; exits with a one-line message if there is none. */
export function profileFiles(dir: string, tool: string): string[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) {
    console.error(`${tool}: no .cpuprofile in ${dir}`);
    process.exit(2);
  }
  return files.map((f) => join(dir, f));
}

export function readProfile(path: string): Profile {
  return JSON.parse(readFileSync(path, 'utf8')) as Profile;
}
