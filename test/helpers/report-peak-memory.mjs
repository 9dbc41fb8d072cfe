// Preloaded into a CLI process by the memory tests (node --import): at exit,
// writes the process's peak resident set and heap figures as JSON to the
// file named by PTSCOPE_PEAK_MEMORY_FILE.
import { writeFileSync } from 'node:fs';

const file = process.env.PTSCOPE_PEAK_MEMORY_FILE;
if (file) {
  process.on('exit', () => {
    const m = process.memoryUsage();
    const peak = { maxRssBytes: process.resourceUsage().maxRSS * 1024, heapUsedBytes: m.heapUsed, arrayBuffersBytes: m.arrayBuffers };
    writeFileSync(file, JSON.stringify(peak));
  });
}
