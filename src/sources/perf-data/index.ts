/**
 * perf.data import and export for Intel PT.
 *
 * Import: {@link readPerfData} builds a {@link PerfDataModel} (header,
 * Intel PT configuration, per-cpu/per-thread trace streams, sideband
 * timeline); {@link flowInputs} turns it into what a flow decoder needs per
 * stream (TraceSource, DecoderConfig, task and image by time).
 *
 * Export: {@link writePerfData} writes a perf.data that perf script decodes;
 * {@link exportPerfData} does it for a recording, every thread's stream in
 * perf's per-thread layout; {@link exportPerfDataPerCpu} in perf's per-CPU
 * layout, the threads' runs interleaved on N virtual CPUs.
 */
export { readPerfData, readPerfDataBytes, flowInputs } from './perf-data.js';
export type { PerfDataModel, PerfFlowInput, ReadPerfDataOptions } from './perf-data.js';
export { PerfDataError, NO_PT_DATA } from './file-access.js';
export { writePerfData } from './writer.js';
export type { AuxBuffer, PerfDataSpec, PerfDataLayout, SidebandEvent } from './writer.js';
export { exportPerfData, exportInputFrom, closeExportInput } from './bundle-to-perf.js';
export type { ExportImage, ExportInput, ExportResult, ExportStream, ExportTask } from './bundle-to-perf.js';
export { exportPerfDataPerCpu, perCpuRefusal, MAX_CPUS } from './per-cpu-layout.js';
export type { PerCpuOptions, PerCpuResult } from './per-cpu-layout.js';
export { cutRuns } from './thread-runs.js';
export type { TraceRun } from './thread-runs.js';
export { defaultIntelPtInfo, decoderConfigFor, INTEL_PT_CONFIG, traceSettings } from './auxtrace-info.js';
export type { IntelPtInfo, IntelPtTraceSettings } from './auxtrace-info.js';
export { SidebandTimeline, SidebandImageProvider, resolveMappedFile } from './sideband.js';
export type { Mapping, Task, CpuSwitch, ImageForTask } from './sideband.js';
export { AuxStream, AuxStreamSource } from './aux-streams.js';
export type { AuxFragment } from './aux-streams.js';
