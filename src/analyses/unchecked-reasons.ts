/**
 * The unchecked notes the detectors can make once per transfer, as reason
 * functions for UncheckedLog.noteFor: each builds its one line only the
 * first time a key (an address, a module) comes with it.
 */
import { hexAddress } from './finding.js';
import type { Module } from './modules.js';

export const noImageForReturn = (to: number): string => `no image for ${hexAddress(to)} (return target)`;
export const noImageForJump = (to: number): string => `no image for ${hexAddress(to)} (indirect jump target)`;
export const noImageForCall = (to: number): string => `no image for ${hexAddress(to)} (indirect call target)`;
export const noModuleForTarget = (to: number): string => `no module for indirect target ${hexAddress(to)}`;
export const noModuleForTransfer = (ip: number): string => `no module for ${hexAddress(ip)}: transfer not checked`;
/** rop's. */
export const targetsNotJudged = (m: Module): string => `indirect targets in ${m.name} not judged: ${m.cfgUnavailableReason}`;
/** cfi's. */
export const targetsNotChecked = (m: Module): string => `indirect targets in ${m.name} not checked: ${m.cfgUnavailableReason}`;
/** inter-module's. */
export const entriesNotChecked = (m: Module): string => `entries into ${m.name} not checked: ${m.cfgUnavailableReason}`;
export const entriesFromGeneratedCode = (m: Module): string =>
  `entries into ${m.name} from code generated at run time not checked: the module that generated it is not known`;
