/**
 * `ptscope train`: train the learned exploit-window model on a dataset
 * directory (tools/learned/make-dataset.ts writes one) and save its weights.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { readDataset, trainModel, type DatasetWindow } from '../analyses/learned/train.js';
import { defineCommand, integer, list, parseCommand } from './command.js';
import { CliError, type LineWriter } from './output.js';

export function trainCommand() {
  return defineCommand('train', 'Train the exploit-window classifier (MLP, tfjs CPU backend) on the labelled windows of <dataset-dir>/windows.jsonl and write its weights as JSON.')
    .argument('<dataset-dir>', 'a dataset made by tools/learned/make-dataset.ts')
    .requiredOption('-o, --output <file>', 'model file to write')
    .option('--epochs <n>', 'training epochs', integer(1), 20)
    .option('--seed <n>', 'initialisation and shuffling seed', integer(1), 1)
    .option('--exclude <groups>', 'leave out these programs (comma-separated group names)', list, [] as string[])
    .option('-q, --quiet', 'no per-epoch progress');
}

/** `ptscope train`. */
export async function runTrainCommand(args: string[], out: LineWriter): Promise<number> {
  const { help, opts: o, args: operands } = parseCommand<{ output: string; epochs: number; seed: number; exclude: string[]; quiet?: boolean }>(trainCommand(), args, out);
  if (help) return 0;
  const dir = operands[0]!;
  const { output, epochs, seed, exclude } = o;
  const quiet = o.quiet === true;
  if (!existsSync(dir)) throw new CliError(`${dir}: no such directory.`);
  let windows: DatasetWindow[];
  try {
    windows = readDataset(dir).filter((w) => !exclude.includes(w.group));
  } catch (e) {
    throw new CliError((e as Error).message.split('\n')[0]);
  }
  let model;
  try {
    model = await trainModel(windows, {
      epochs,
      seed,
      log: quiet ? undefined : (l) => process.stderr.write(`${l}\n`),
      describe: { dataset: dir, excluded: exclude.join(',') },
    });
  } catch (e) {
    throw new CliError((e as Error).message.split('\n')[0]);
  }
  try {
    writeFileSync(output, JSON.stringify(model) + '\n');
  } catch (e) {
    throw new CliError(`${output}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  out.line(`${output}: ${model.training.windows} windows (${model.training.attackWindows} attack), ${epochs} epochs`);
  return 0;
}
