/**
 * One argument parser for every command except `dump` and `flow` (which take
 * ptdump's and ptxed's argv verbatim): commander, configured once here so
 * every command has the same behaviour — generated help, typo suggestions,
 * one-line errors with exit status 2, and the same input options.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import type { Recording } from '../sources/model/recording.js';
import { openRecording, type OpenOptions } from '../sources/import/open-recording.js';
import { InputError } from '../sources/import/safe-files.js';
import { CliError, type LineWriter } from './output.js';

/** A command definition: options, arguments, help; no action (the runner reads the result). */
export function defineCommand(name: string, description: string): Command {
  return new Command(`ptscope ${name}`)
    .description(description)
    .helpOption('-h, --help', 'this help')
    .showSuggestionAfterError(true)
    .allowExcessArguments(false)
    .exitOverride();
}

export interface Parsed<O> {
  /** True if help was printed: the command should return 0. */
  help: boolean;
  opts: O;
  args: string[];
}

/**
 * Parse `args` (without the command name) with `cmd`. Help goes to `out`;
 * a usage error becomes a CliError (one line, exit 2).
 */
export function parseCommand<O>(cmd: Command, args: readonly string[], out: LineWriter): Parsed<O> {
  let errText = '';
  cmd.configureOutput({
    writeOut: (s) => {
      for (const l of s.replace(/\n$/, '').split('\n')) out.line(l);
    },
    writeErr: (s) => {
      errText += s;
    },
    outputError: (s) => {
      errText += s;
    },
  });
  try {
    cmd.parse([...args], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') {
        return { help: true, opts: cmd.opts() as O, args: [] };
      }
      const lines = (errText || e.message).trim().split('\n').map((l) => l.replace(/^error: /, '').trim()).filter((l) => l.length > 0);
      const text = lines.join(' ');
      throw new CliError(`${shortName(cmd)}: ${text}${/[.?!)]$/.test(text) ? '' : '.'} Run '${cmd.name()} --help'.`);
    }
    if (e instanceof CliError) throw e;
    if (e instanceof InvalidArgumentError) throw new CliError(`${shortName(cmd)}: ${e.message}`);
    throw e;
  }
  return { help: false, opts: cmd.opts() as O, args: cmd.args };
}

function shortName(cmd: Command): string {
  return cmd.name().replace(/^ptscope /, '');
}

/** Repeatable option values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** An unsigned integer option (C syntax: 0x hex, 0 octal, decimal) within [min, max]. */
export function integer(min = 0, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text: string) => {
    const t = text.trim();
    let v: number;
    if (/^0[xX][0-9a-fA-F]+$/.test(t)) v = parseInt(t.slice(2), 16);
    else if (/^0[0-7]*$/.test(t)) v = t.length > 1 ? parseInt(t.slice(1), 8) : 0;
    else if (/^[1-9][0-9]*$/.test(t)) v = parseInt(t, 10);
    else throw new InvalidArgumentError(`expected a non-negative integer, got '${text}'.`);
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `expected at least ${min}, got '${text}'.` : `expected ${min} to ${max}, got '${text}'.`);
    }
    return v;
  };
}

/** A comma-separated list option. */
export function list(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

export interface InputOptions {
  raw?: string[];
  elf?: string[];
  cpu?: string;
  sysroot?: string;
}

/** The options every command that reads a trace takes: raw-trace images and the sysroot for perf.data. */
export function withInputOptions(cmd: Command): Command {
  return cmd
    .option('--raw <file[:from-to]:base>', 'for a raw trace: raw image bytes (ptxed syntax; repeatable)', collect)
    .option('--elf <file[:base]>', 'for a raw trace: an ELF image (ptxed syntax; repeatable)', collect)
    .option('--cpu <f/m[/s]>', 'for a raw trace: the CPU it was recorded on (errata)')
    .option('--sysroot <dir>', "for a perf.data: find the recording machine's files under DIR");
}

/** Open a command's input (any format) as a Recording; input errors become one-line CliErrors. */
export function openInput(target: string, o: InputOptions): Recording {
  const options: OpenOptions = { raw: o.raw ?? [], elf: o.elf ?? [], cpu: o.cpu, sysroot: o.sysroot };
  try {
    return openRecording(target, options);
  } catch (e) {
    if (e instanceof InputError) throw new CliError(e.message);
    if (e instanceof Error) throw new CliError(e.message.split('\n')[0]!);
    throw e;
  }
}

/** Wrap a computation whose errors are input errors (one line, exit 2). */
export function asInputError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CliError) throw e;
    if (e instanceof Error) throw new CliError(e.message.split('\n')[0]!);
    throw e;
  }
}
