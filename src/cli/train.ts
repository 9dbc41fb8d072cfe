/**
 * `ptscope train`: train the learned exploit-window model on a dataset
 * directory (tools/learned/make-dataset.ts writes one) and save its weights.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { readDataset, trainModel, type DatasetWindow } from '../analyses/learned/train.js';
import { CliError, type LineWriter } from './output.js';

export const TRAIN_HELP = `usage: ptscope train <dataset-dir> -o <model.json> [options]

Train the exploit-window classifier (MLP, tfjs CPU backend) on the labelled
windows of <dataset-dir>/windows.jsonl and write its weights as JSON.

options:
  -o, --output FILE   model file to write (required)
  --epochs N          training epochs (default 20)
  --seed N            initialisation and shuffling seed (default 1)
  --exclude GROUPS    leave out these programs (comma-separated group names)
  -q, --quiet         no per-epoch progress
  -h, --help          this help
`;

/** `ptscope train`. */
export async function runTrainCommand(args: string[], out: LineWriter): Promise<number> {
  let dir: string | null = null;
  let output: string | null = null;
  let epochs = 20;
  let seed = 1;
  let quiet = false;
  let exclude: string[] = [];
  const num = (i: number, opt: string): number => {
    const n = Number(args[i]);
    if (!Number.isInteger(n) || n < 1) throw new CliError(`${opt}: expected a positive integer, got '${args[i] ?? ''}'.`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case '-h':
      case '--help':
        out.line(TRAIN_HELP.trimEnd());
        return 0;
      case '-o':
      case '--output':
        if (!args[i + 1]) throw new CliError(`${a}: missing argument.`);
        output = args[++i];
        break;
      case '--epochs':
        epochs = num(++i, a);
        break;
      case '--seed':
        seed = num(++i, a);
        break;
      case '--exclude':
        exclude = (args[++i] ?? '').split(',').filter((s) => s.length > 0);
        break;
      case '-q':
      case '--quiet':
        quiet = true;
        break;
      default:
        if (a.startsWith('-')) throw new CliError(`unknown option '${a}'. Run 'ptscope train --help'.`);
        if (dir !== null) throw new CliError(`more than one dataset given ('${dir}', '${a}').`);
        dir = a;
    }
  }
  if (dir === null) throw new CliError("no dataset directory given. Run 'ptscope train --help'.");
  if (output === null) throw new CliError('no output file given (-o model.json).');
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
  writeFileSync(output, JSON.stringify(model) + '\n');
  out.line(`${output}: ${model.training.windows} windows (${model.training.attackWindows} attack), ${epochs} epochs`);
  return 0;
}
