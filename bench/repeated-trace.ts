/**
 * The real mruby trace repeated `copies` times (a longer run of the same
 * program), written once under `benchDir` and reused while its size is
 * right; written to a private name and renamed, so a run that stops midway
 * leaves no short file behind.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function repeatedMruby(realDir: string, benchDir: string, copies: number): string {
  const file = join(benchDir, `mruby-x${copies}.pt`);
  const one = readFileSync(join(realDir, 'mruby', 'trace.pt'));
  if (existsSync(file) && statSync(file).size === one.length * copies) return file;
  mkdirSync(benchDir, { recursive: true });
  const tmp = `${file}.tmp${process.pid}`;
  writeFileSync(tmp, Buffer.concat(Array.from({ length: copies }, () => one)));
  renameSync(tmp, file);
  return file;
}
