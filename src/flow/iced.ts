/**
 * iced-x86, the x86 decoder every layer uses, loaded with `require`.
 *
 * iced-x86 is a CommonJS package of 0.9 MB of JavaScript. An ESM `import`
 * of it makes Node scan the whole file for its export names
 * (cjs-module-lexer) before running it, which cost about 60 ms of every
 * process start on this machine (require: 70-85 ms; import: 130-190 ms), and
 * each worker thread pays it again. Everything imports iced from here, so
 * the package is loaded once, the CommonJS way. Values and types keep
 * iced's own names.
 */
import { createRequire } from 'node:module';
import type * as Iced from 'iced-x86';

const iced = createRequire(import.meta.url)('iced-x86') as typeof Iced;

export const Code = iced.Code;
export type Code = Iced.Code;
export const ConditionCode = iced.ConditionCode;
export type ConditionCode = Iced.ConditionCode;
export const Decoder = iced.Decoder;
export type Decoder = Iced.Decoder;
export const DecoderError = iced.DecoderError;
export type DecoderError = Iced.DecoderError;
export const DecoderOptions = iced.DecoderOptions;
export type DecoderOptions = Iced.DecoderOptions;
export const FlowControl = iced.FlowControl;
export type FlowControl = Iced.FlowControl;
export const Formatter = iced.Formatter;
export type Formatter = Iced.Formatter;
export const FormatterSyntax = iced.FormatterSyntax;
export type FormatterSyntax = Iced.FormatterSyntax;
export const Instruction = iced.Instruction;
export type Instruction = Iced.Instruction;
export const InstructionInfoFactory = iced.InstructionInfoFactory;
export type InstructionInfoFactory = Iced.InstructionInfoFactory;
export const MemorySize = iced.MemorySize;
export type MemorySize = Iced.MemorySize;
export const MemorySizeExt = iced.MemorySizeExt;
export type MemorySizeExt = Iced.MemorySizeExt;
export const MemorySizeOptions = iced.MemorySizeOptions;
export type MemorySizeOptions = Iced.MemorySizeOptions;
export const Mnemonic = iced.Mnemonic;
export type Mnemonic = Iced.Mnemonic;
export const OpAccess = iced.OpAccess;
export type OpAccess = Iced.OpAccess;
export const OpKind = iced.OpKind;
export type OpKind = Iced.OpKind;
export const Register = iced.Register;
export type Register = Iced.Register;
export const RegisterExt = iced.RegisterExt;
export type RegisterExt = Iced.RegisterExt;
