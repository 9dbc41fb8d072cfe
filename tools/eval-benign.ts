/**
 * The benign evaluation set: real Debian programs (and three programs built
 * from corpus/benign/) with realistic workloads, each recorded with the
 * emulated recorder and analysed with the default detectors. It prints the
 * README's per-program table, the false-positive sentence, and FlowGuard's
 * fast-path settlement and cost per check.
 *
 *   node dist/tools/eval-benign.js [--held-out] [--work DIR] [--only name,name] [--reuse] [--json FILE] [--markdown]
 *   node dist/tools/eval-benign.js [--held-out] --merge FILE,FILE [--markdown]
 *
 * --held-out runs the held-out set (HELD_OUT) instead, reported apart
 * (default results file WORK/held-out.json).
 *
 * The results file (--json, default WORK/results.json) is rewritten after
 * each program. --merge prints the report of several results files (runs
 * of disjoint --only lists, e.g. in parallel work directories) as one.
 *
 * Every program is recorded twice, on two different inputs ("a" and "b").
 * The default detectors judge both runs. FlowGuard is trained on run "b"
 * and checks run "a" (never trained on what it checks).
 *
 * Programs that fork, start threads or exec are in the set too. A probe
 * (corpus/benign/probe.c) asks the recorder whether it follows each of
 * those; while it does not, such programs are listed as "not recordable
 * yet" with what the recorder said, and are not counted. Nothing else has
 * to change here when the recorder learns to follow them.
 *
 * Inputs are generated deterministically under the work directory; the
 * programs get only what is named on their command line (and stdin).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { analyzeRecording, defaultDetectors, type AnalyzeOptions, type AnalyzeResult } from '../src/analyses/analyze.js';
import { traceInputs } from '../src/analyses/trace-input.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import type { Recording } from '../src/sources/model/recording.js';
import { trainFlowGuardPolicy } from '../src/analyses/flowguard.js';
import { PREPARED_UNSEEN_REASON } from '../src/analyses/stack-switch.js';
import { ControlFlowWalker, TransferKind } from '../src/flow/control-flow.js';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { PacketDecoder } from '../src/packets/decoder.js';

/** What a program exercises (for the table). */
type Trait = 'interpreter' | 'longjmp' | 'exceptions' | 'signals' | 'contexts' | 'jit' | 'compression' | 'text' | 'database' | 'threads' | 'fork' | 'exec';
/** What the recorder must follow for the run to be complete. */
type Need = 'fork' | 'thread' | 'exec';

interface Inputs {
  dir: string;
  text: string;
  bigText: string;
  numbers: string;
  json: string;
  csv: string;
  tree: string;
  tarball: string;
  gz: string;
  bz2: string;
  xz: string;
  zst: string;
  lz4: string;
  sql: string;
  lua: string;
  tcl: string;
  perl: string;
  python: string;
  pythonSignals: string;
  pythonFork: string;
  bash: string;
  bashFork: string;
  dash: string;
  awk: string;
  sed: string;
  jq: string;
  bc: string;
  pdf: string;
  badPdf: string;
  diffOld: string;
  diffNew: string;
  patch: string;
  asm: string;
  elf: string;
  mangled: string;
  b64: string;
  zip: string;
  built: Record<string, string>;
}

interface Program {
  name: string;
  traits: Trait[];
  needs?: Need[];
  /** The command for input set `i` ("a" or "b" differ in size and content). */
  argv(i: Inputs): string[];
  stdin?(i: Inputs): string;
}

const P = (name: string, traits: Trait[], argv: Program['argv'], more: Partial<Program> = {}): Program => ({ name, traits, argv, ...more });

/** The set. Each argv names its inputs, so a confining sandbox still shows them. */
export const PROGRAMS: readonly Program[] = [
  P('perl-eval-die', ['interpreter', 'longjmp'], (i) => ['/usr/bin/perl', i.perl, i.text]),
  P('perl-regex', ['interpreter'], (i) => ['/usr/bin/perl', '-ne', 'print if /\\b(qu\\w+|br\\w*n)\\b/i; $n += () = /a/g; END { print "$n\\n" }', i.text]),
  P('python3-exceptions', ['interpreter'], (i) => ['/usr/bin/python3', '-S', i.python, i.text]),
  P('python3-json-re', ['interpreter'], (i) => ['/usr/bin/python3', '-S', '-c', 'import json,re,sys;d=json.load(open(sys.argv[1]));print(len(re.findall(r"\\w+", json.dumps(d))))', i.json]),
  P('python3-signals', ['interpreter', 'signals'], (i) => ['/usr/bin/python3', '-S', i.pythonSignals]),
  P('mawk', ['interpreter', 'text'], (i) => ['/usr/bin/mawk', '-f', i.awk, i.csv]),
  P('gawk', ['interpreter', 'text'], (i) => ['/usr/bin/gawk', '-f', i.awk, i.csv]),
  P('bash-script', ['interpreter', 'signals', 'longjmp'], (i) => ['/usr/bin/bash', i.bash, i.text]),
  P('dash-script', ['interpreter'], (i) => ['/usr/bin/dash', i.dash]),
  P('lua-pcall', ['interpreter', 'longjmp'], (i) => ['/usr/bin/lua5.4', i.lua]),
  P('tclsh', ['interpreter'], (i) => ['/usr/bin/tclsh', i.tcl]),
  P('sqlite3', ['database'], (i) => ['/usr/bin/sqlite3', ':memory:', `.read ${i.sql}`]),
  P('jq', ['interpreter'], (i) => ['/usr/bin/jq', '-c', readFileSync(i.jq, 'utf8').trim(), i.json]),
  P('bc', ['interpreter'], (i) => ['/usr/bin/bc', '-l', i.bc]),
  P('gzip-compress', ['compression'], (i) => ['/usr/bin/gzip', '-c', '-9', i.bigText]),
  P('gzip-decompress', ['compression'], (i) => ['/usr/bin/gzip', '-d', '-c', i.gz]),
  P('bzip2-compress', ['compression'], (i) => ['/usr/bin/bzip2', '-c', i.bigText]),
  P('bzip2-decompress', ['compression'], (i) => ['/usr/bin/bzip2', '-d', '-c', i.bz2]),
  P('xz-compress', ['compression'], (i) => ['/usr/bin/xz', '-T1', '-c', '-1', i.text]),
  P('xz-decompress', ['compression'], (i) => ['/usr/bin/xz', '-d', '-c', i.xz]),
  P('zstd-compress', ['compression'], (i) => ['/usr/bin/zstd', '-q', '-c', '-T1', '--no-asyncio', '-3', i.bigText]),
  P('zstd-decompress', ['compression'], (i) => ['/usr/bin/zstd', '-q', '-d', '-c', '--no-asyncio', i.zst]),
  P('lz4', ['compression'], (i) => ['/usr/bin/lz4', '-q', '-c', i.bigText]),
  P('sort', ['text'], (i) => ['/usr/bin/sort', '--parallel=1', i.text]),
  P('sort-numeric', ['text'], (i) => ['/usr/bin/sort', '--parallel=1', '-n', '-r', i.numbers]),
  P('uniq', ['text'], (i) => ['/usr/bin/uniq', '-c', i.text]),
  P('wc', ['text'], (i) => ['/usr/bin/wc', i.text, i.bigText]),
  P('sha256sum', ['text'], (i) => ['/usr/bin/sha256sum', i.bigText]),
  P('md5sum', ['text'], (i) => ['/usr/bin/md5sum', i.text, i.numbers]),
  P('base64', ['text'], (i) => ['/usr/bin/base64', '-d', i.b64]),
  P('od', ['text'], (i) => ['/usr/bin/od', '-A', 'x', '-t', 'x1z', i.text]),
  P('tr', ['text'], () => ['/usr/bin/tr', 'a-z', 'A-Z'], { stdin: (i) => i.text }),
  P('cut', ['text'], (i) => ['/usr/bin/cut', '-d', ',', '-f', '1,3', i.csv]),
  P('ls', ['text'], (i) => ['/usr/bin/ls', '-laR', i.tree]),
  P('du', ['text'], (i) => ['/usr/bin/du', '-a', i.tree]),
  P('find', ['text'], (i) => ['/usr/bin/find', i.tree, '-name', '*.txt', '-size', '-10k']),
  P('grep-E', ['text'], (i) => ['/usr/bin/grep', '-n', '-E', '(fox|dog)s?[[:space:]]+(over|lazy)', i.text]),
  P('grep-P', ['text', 'jit'], (i) => ['/usr/bin/grep', '-c', '-P', '\\b(\\w)\\w*\\1\\b', i.text]),
  P('sed', ['text'], (i) => ['/usr/bin/sed', '-f', i.sed, i.text]),
  P('tar-create', ['text'], (i) => ['/usr/bin/tar', '-cf', '-', i.tree]),
  P('tar-list', ['text'], (i) => ['/usr/bin/tar', '-tvf', i.tarball]),
  P('diff', ['text'], (i) => ['/usr/bin/diff', '-u', i.diffOld, i.diffNew]),
  P('cmp', ['text'], (i) => ['/usr/bin/cmp', '-l', i.diffOld, i.diffNew]),
  P('patch', ['text'], (i) => ['/usr/bin/patch', '--dry-run', '-o', '-', i.diffOld, i.patch]),
  P('xxd', ['text'], (i) => ['/usr/bin/xxd', i.numbers]),
  P('iconv', ['text'], (i) => ['/usr/bin/iconv', '-f', 'UTF-8', '-t', 'UTF-16', i.text]),
  P('column', ['text'], (i) => ['/usr/bin/column', '-t', '-s', ',', i.csv]),
  P('strings', ['text'], (i) => ['/usr/bin/strings', '-n', '6', i.elf]),
  P('readelf', ['text'], (i) => ['/usr/bin/readelf', '-W', '-a', i.elf]),
  P('objdump', ['text'], (i) => ['/usr/bin/objdump', '-d', '-r', i.built.contexts]),
  P('c++filt', ['text'], () => ['/usr/bin/c++filt'], { stdin: (i) => i.mangled }),
  P('openssl-dgst', ['text'], (i) => ['/usr/bin/openssl', 'dgst', '-sha512', i.bigText]),
  P('unzip-list', ['compression'], (i) => ['/usr/bin/unzip', '-l', i.zip]),
  P('qpdf-check', ['exceptions'], (i) => ['/usr/bin/qpdf', '--check', i.pdf]),
  P('qpdf-damaged', ['exceptions'], (i) => ['/usr/bin/qpdf', '--check', i.badPdf]),
  P('contexts', ['longjmp', 'signals', 'contexts'], (i) => [i.built.contexts]),
  P('exceptions', ['exceptions'], (i) => [i.built.exceptions]),
  // They need the recorder to follow threads, fork or exec.
  P('xz-threads', ['compression', 'threads'], (i) => ['/usr/bin/xz', '-T2', '-c', '-1', i.bigText], { needs: ['thread'] }),
  P('zstd-threads', ['compression', 'threads'], (i) => ['/usr/bin/zstd', '-q', '-c', '-T2', i.bigText], { needs: ['thread'] }),
  P('sort-parallel', ['text', 'threads'], (i) => ['/usr/bin/sort', '--parallel=2', '-S', '1M', i.bigText], { needs: ['thread'] }),
  P('python3-threads', ['interpreter', 'threads'], () => ['/usr/bin/python3', '-S', '-c', 'import threading;r=[];ts=[threading.Thread(target=lambda k=k:r.append(sum(range(k*1000)))) for k in range(4)];[t.start() for t in ts];[t.join() for t in ts];print(sum(r))'], { needs: ['thread'] }),
  P('bash-subshells', ['interpreter', 'fork'], (i) => ['/usr/bin/bash', i.bashFork, i.text], { needs: ['fork'] }),
  P('python3-fork', ['interpreter', 'fork'], (i) => ['/usr/bin/python3', '-S', i.pythonFork], { needs: ['fork'] }),
  P('bash-pipeline', ['interpreter', 'fork', 'exec'], (i) => ['/usr/bin/bash', '-c', 'sort "$1" | uniq -c | wc -l; echo "$(wc -c < "$1")"', 'bash', i.text], { needs: ['fork', 'exec'] }),
  P('find-exec', ['text', 'fork', 'exec'], (i) => ['/usr/bin/find', i.tree, '-name', '*.txt', '-exec', '/usr/bin/wc', '-l', '{}', '+'], { needs: ['fork', 'exec'] }),
  P('tar-gzip', ['compression', 'fork', 'exec'], (i) => ['/usr/bin/tar', '-czf', '-', i.tree], { needs: ['fork', 'exec'] }),
  P('make', ['fork', 'exec'], (i) => ['/usr/bin/make', '-s', '-f', join(i.dir, 'Makefile'), 'all'], { needs: ['fork', 'exec'] }),
];

/** An input file written under `dir`, with the fixed modification time (listings and archives show it). */
function writeInput(dir: string, name: string, data: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  utimesSync(path, FIXED_TIME, FIXED_TIME);
  return path;
}

/** A file (a standard input, a source) written beside input set `i`'s files. */
function stdinFile(i: Inputs, name: string, content: string): string {
  return writeInput(i.dir, name, content);
}

/**
 * The held-out set: Debian programs that no part of ptscope was developed
 * or tuned against, run by `--held-out` and reported apart. Added after
 * the set above was settled; a program moves to the set above only with a
 * note of what it was used for.
 */
export const HELD_OUT: readonly Program[] = [
  P('cksum', ['text'], (i) => ['/usr/bin/cksum', i.bigText]),
  P('b2sum', ['text'], (i) => ['/usr/bin/b2sum', i.bigText]),
  P('factor', ['text'], () => ['/usr/bin/factor'], { stdin: (i) => stdinFile(i, 'factor.txt', readFileSync(i.numbers, 'utf8').replace(/-/g, '')) }),
  P('hexdump', ['text'], (i) => ['/usr/bin/hexdump', '-C', i.numbers]),
  P('fmt', ['text'], (i) => ['/usr/bin/fmt', '-w', '50', i.text]),
  P('ed', ['text'], (i) => ['/usr/bin/ed', '-s', i.text], { stdin: (i) => stdinFile(i, 'ed.txt', ',s/fox/cat/g\n,s/^the /a /\n,p\nQ\n') }),
  P('file', ['text'], (i) => ['/usr/bin/file', i.elf, i.pdf, i.gz, i.json, i.tarball, i.text]),
  P('git-hash-object', ['text'], (i) => ['/usr/bin/git', 'hash-object', i.bigText, i.text]),
  P('llvm-mc', ['text'], (i) => ['/usr/bin/llvm-mc', '-filetype=obj', '-o', '/dev/null', i.asm]),
  P('json_pp', ['interpreter', 'exec'], () => ['/usr/bin/json_pp'], { stdin: (i) => i.json, needs: ['exec'] }),
  P('diff3', ['text', 'fork', 'exec'], (i) => ['/usr/bin/diff3', i.diffOld, i.diffNew, i.text], { needs: ['fork', 'exec'] }),
  P('groff', ['text', 'fork', 'exec'], () => ['/usr/bin/groff', '-Tascii', '-man'], {
    stdin: (i) => stdinFile(i, 'page.1', `.TH SAMPLE 1\n.SH NAME\nsample \\- a page\n.SH DESCRIPTION\n${readFileSync(i.text, 'utf8').split('\n').slice(0, 120).join('\n.PP\n')}\n`),
    needs: ['fork', 'exec'],
  }),
  // Added in a second batch, after the first twelve had been run and the two causes they found fixed.
  P('gpg-print-md', ['text'], (i) => {
    // A home directory that exists (named on the command line, so the sandbox shows it, read-only), and no
    // keyring or lock files to write there: gpg exits 2 otherwise, although it prints the digest.
    const home = join(i.dir, 'gnupg');
    mkdirSync(home, { recursive: true, mode: 0o700 });
    return ['/usr/bin/gpg', '--homedir', home, '--no-keyring', '--lock-never', '--batch', '--print-md', 'SHA256', i.bigText];
  }),
  P('as', ['text'], (i) => ['/usr/bin/as', '--64', '-o', '/dev/null', i.asm]),
  P('cpp', ['text', 'fork', 'exec'], (i) => ['/usr/bin/cpp', '-P', stdinFile(i, 'macros.c', `#define SQ(x) ((x) * (x))\n#define STR(x) #x\n${readFileSync(i.text, 'utf8').split('\n').slice(0, 80).map((l, n) => `int v${n} = SQ(${n}); const char *s${n} = STR(${l.replace(/[^a-z ]/gi, '')});`).join('\n')}\n`)], { needs: ['fork', 'exec'] }),
  P('getent', ['text'], () => ['/usr/bin/getent', 'passwd', 'root']),
  P('infocmp', ['text'], () => ['/usr/bin/infocmp', '-1', 'xterm']),
  P('zip', ['compression'], (i) => ['/usr/bin/zip', '-q', '-r', '-', i.tree]),
  P('shuf', ['text'], (i) => ['/usr/bin/shuf', `--random-source=${i.numbers}`, '-n', '200', i.text]),
  P('nm', ['text'], (i) => ['/usr/bin/nm', '-D', '-C', i.elf]),
  // A third batch, after the second batch's causes were fixed.
  P('ctags', ['text'], (i) => ['/usr/bin/ctags', '-f', '-', '--fields=+n', cSample(i)]),
  P('xgettext', ['text'], (i) => ['/usr/bin/xgettext', '-o', '-', '--keyword=_', cSample(i)]),
  P('cmake-script', ['interpreter'], (i) => ['/usr/bin/cmake', '-P', stdinFile(i, 'script.cmake', [
    'set(words "")',
    // The text is named on the command line (the sandbox shows only what is), as CMAKE_ARGV3.
    'file(STRINGS "${CMAKE_ARGV3}" lines)',
    'foreach(line IN LISTS lines)',
    '  string(REPLACE " " ";" parts "${line}")',
    '  list(APPEND words ${parts})',
    'endforeach()',
    'list(REMOVE_DUPLICATES words)',
    'list(SORT words)',
    'list(LENGTH words n)',
    'math(EXPR twice "${n} * 2")',
    'string(TOUPPER "${words}" upper)',
    'message(STATUS "${n} ${twice}")',
  ].join('\n') + '\n'), i.text]),
  P('llvm-objdump', ['text'], (i) => ['/usr/bin/llvm-objdump', '-d', '--no-show-raw-insn', i.built.contexts]),
  P('msgfmt', ['text'], (i) => ['/usr/bin/msgfmt', '--statistics', '-o', '/dev/null', stdinFile(i, 'messages.po', readFileSync(i.text, 'utf8').split('\n').slice(0, 200).filter((l) => l !== '').map((l, n) => `msgid "${n}: ${l}"\nmsgstr "${n}: ${l.toUpperCase()}"\n`).join('\n'))]),
  P('ptx', ['text'], (i) => ['/usr/bin/ptx', i.text]),
  P('icuinfo', ['text'], () => ['/usr/bin/icuinfo']),
  P('dpkg-query', ['text'], () => ['/usr/bin/dpkg-query', '-W', '-f=${Package} ${Version}\n']),
  // A fourth batch, first run by hand after the third: fontconfig, GLib, and clang's start-up (libLLVM, libclang-cpp).
  P('getconf', ['text'], () => ['/usr/bin/getconf', '-a']),
  P('fc-match', ['text'], () => ['/usr/bin/fc-match', 'sans']),
  P('gio', ['text'], () => ['/usr/bin/gio', '--version']),
  P('clang-version', ['text'], () => ['/usr/bin/clang', '--version']),
  // A fifth batch, after the fourth: Ruby (a threaded-code VM that raises by __builtin_longjmp, and a timer thread),
  // xargs running two children at a time, gcc driving cc1 and as, and yasm.
  P('ruby', ['interpreter', 'threads', 'longjmp'], (i) => ['/usr/bin/ruby', '--disable-gems', stdinFile(i, 'words.rb', [
    'counts = Hash.new(0)',
    'File.read(ARGV[0]).split.each { |w| counts[w.downcase] += 1 }',
    'sums = 3.times.map { |k| Thread.new { (1..(k + 1) * 20_000).reduce(0) { |a, b| a + b % 7 } } }',
    'errors = counts.keys.first(40).count { |w| begin; raise ArgumentError, w if w.size.odd?; false; rescue ArgumentError; true; end }',
    'puts counts.sort_by { |w, n| [-n, w] }.first(5).inspect, sums.map(&:value).sum, errors',
  ].join('\n') + '\n'), i.text], { needs: ['thread'] }),
  P('xargs-parallel', ['text', 'fork', 'exec'], (i) => ['/usr/bin/xargs', '-P', '2', '-n', '1', '-a', stdinFile(i, 'words.txt', readFileSync(i.text, 'utf8').split(/\s+/).filter((w) => /^[a-z]+$/i.test(w)).slice(0, 12).join('\n') + '\n'), '/usr/bin/expr', 'length'], { needs: ['fork', 'exec'] }),
  P('gcc-compile', ['text', 'fork', 'exec'], (i) => ['/usr/bin/gcc', '-pipe', '-O2', '-c', '-o', '/dev/null', cSample(i)], { needs: ['fork', 'exec'] }),
  P('yasm', ['text'], (i) => ['/usr/bin/yasm', '-p', 'gas', '-f', 'elf64', '-o', '/dev/null', i.asm]),
  // A sixth batch, after the fifth: OpenSSH's key generation (libcrypto), gold linking with two threads (C++),
  // gdb in batch mode (C++, with CPython as a shared library), and two coreutils.
  P('ssh-keygen', ['text'], () => ['/usr/bin/ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'eval', '-f', 'eval-key']),
  P('ld-gold-threads', ['text', 'threads'], (i) => ['/usr/bin/ld.gold', '--threads', '--thread-count', '2', '-r', '-o', 'merged.o', objectSample(i)], { needs: ['thread'] }),
  P('gdb-batch', ['interpreter', 'exceptions'], (i) => ['/usr/bin/gdb', '-batch', '-nx', '-ex', 'info functions ^f_', '-ex', 'disassemble main', objectSample(i)]),
  P('sha512sum', ['text'], (i) => ['/usr/bin/sha512sum', i.bigText]),
  // Pairs that only point forward (n before m > n): no cycle, so tsort exits 0.
  P('tsort', ['text'], (i) => ['/usr/bin/tsort', stdinFile(i, 'pairs.txt', readFileSync(i.text, 'utf8').split(/\s+/).filter((w) => /^[a-z]+$/i.test(w)).slice(0, 400).flatMap((w, n, a) => {
    const m = n + 1 + ((n * 7) % 13);
    return m < a.length ? [`${w}${n} ${a[m]}${m}`] : [];
  }).join('\n') + '\n')]),
  // A seventh batch, after the sixth's cause was fixed: AES through libcrypto's assembly, binutils on an
  // object with debug information, and dpkg-deb, which forks tar and a compressor.
  P('openssl-enc', ['text'], (i) => ['/usr/bin/openssl', 'enc', '-aes-256-cbc', '-pbkdf2', '-iter', '2000', '-pass', 'pass:eval', '-in', i.bigText, '-out', 'enc.bin']),
  P('addr2line', ['text'], (i) => ['/usr/bin/addr2line', '-f', '-i', '-C', '-e', objectSample(i), '0x0', '0x10', '0x20', '0x40']),
  P('strip', ['text'], (i) => ['/usr/bin/strip', '--strip-debug', '-o', 'stripped.o', objectSample(i)]),
  P('objcopy', ['text'], (i) => ['/usr/bin/objcopy', '--only-keep-debug', objectSample(i), 'debug.o']),
  P('pr', ['text'], (i) => ['/usr/bin/pr', '-2', '-n', '-h', 'eval', i.text]),
  P('dpkg-deb-build', ['compression', 'fork', 'exec'], (i) => ['/usr/bin/dpkg-deb', '--root-owner-group', '-Zxz', '--build', packageTree(i), 'eval.deb'], { needs: ['fork', 'exec'] }),
];

/** A package tree for dpkg-deb: a control file and the text as its documentation. */
function packageTree(i: Inputs): string {
  const root = join(i.dir, 'pkg');
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  mkdirSync(join(root, 'usr', 'share', 'doc', 'eval-sample'), { recursive: true });
  writeFileSync(join(root, 'DEBIAN', 'control'), 'Package: eval-sample\nVersion: 1.0\nArchitecture: all\nMaintainer: ptscope <eval@example.org>\nDescription: held-out workload\n');
  writeFileSync(join(root, 'usr', 'share', 'doc', 'eval-sample', 'README'), readFileSync(i.text));
  return root;
}

/** cSample compiled to an object file (gold, gdb, binutils), on the host before the recording. */
function objectSample(i: Inputs): string {
  const out = join(i.dir, 'sample.o');
  if (!existsSync(out)) execFileSync('gcc', ['-O1', '-g', '-c', '-o', out, cSample(i)], { stdio: 'pipe' });
  return out;
}

/** A C source with functions, a struct, macros and translatable strings (ctags, xgettext). */
function cSample(i: Inputs): string {
  const words = readFileSync(i.text, 'utf8').split(/\s+/).filter((w) => /^[a-z]+$/.test(w)).slice(0, 60);
  const body = words.map((w, n) => `static int f_${w}_${n}(int x) { return x * ${n} + (int)sizeof(struct rec); }\nconst char *s_${n} = _("${w} number ${n}");`).join('\n');
  return stdinFile(i, 'sample.c', `#define _(s) (s)\nstruct rec { int a; char name[16]; };\n${body}\nint main(void) { return f_${words[0] ?? 'x'}_0(1); }\n`);
}

/** The modification time of every generated input (listings and archives show it). */
const FIXED_TIME = new Date('2024-01-01T00:00:00Z');

/** Deterministic text: words of a fixed vocabulary. */
function makeText(seed: number, lines: number): string {
  const words = ['the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'abacus', 'zebra', 'kernel', 'trace', 'packet', 'branch', 'alpha', 'omega', '42', '3.14', 'Ab', 'ab', 'éclair', 'naïve'];
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = 3 + (next() % 9);
    const line: string[] = [];
    for (let j = 0; j < n; j++) line.push(words[next() % words.length]);
    out.push(line.join(' '));
  }
  return out.join('\n') + '\n';
}

/** A small valid PDF: `pages` pages with a text stream each, with a correct xref table. */
function makePdf(pages: number): string {
  const objs: string[] = [];
  const kids: string[] = [];
  objs.push('<< /Type /Catalog /Pages 2 0 R >>');
  objs.push('PAGES');
  objs.push('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  for (let p = 0; p < pages; p++) {
    const content = `BT /F1 12 Tf 72 ${720 - p} Td (page ${p + 1}: the quick brown fox) Tj ET`;
    objs.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${objs.length + 2} 0 R >>`);
    kids.push(`${objs.length} 0 R`);
    objs.push(`<< /Length ${content.length} >>\nstream\n${content}\nendstream`);
  }
  objs[1] = `<< /Type /Pages /Kids [${kids.join(' ')}] /Count ${pages} >>`;
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objs.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const o of offsets) out += `${String(o).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return out;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/** Write input set `v` ("a" or "b") under `root`. */
function makeInputs(root: string, v: 'a' | 'b', built: Record<string, string>): Inputs {
  const dir = join(root, 'inputs', v);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'tree', 'sub', 'deeper'), { recursive: true });
  const k = v === 'a' ? 1 : 2;
  const f = (name: string, data: string | Uint8Array): string => writeInput(dir, name, data);
  const text = f('text.txt', makeText(11 * k, 300 * k));
  const bigText = f('big.txt', makeText(13 * k, 3000 * k));
  const numbers = f('numbers.txt', Array.from({ length: 500 * k }, (_, n) => String(((n * 7919 * k) % 10007) - 5000)).join('\n') + '\n');
  const csv = f('table.csv', Array.from({ length: 200 * k }, (_, n) => `${n},item${(n * 31) % 97},${((n * 13) % 50) / 4},${n % 3 === 0 ? 'yes' : 'no'}`).join('\n') + '\n');
  const json = f('data.json', JSON.stringify({ items: Array.from({ length: 150 * k }, (_, n) => ({ id: n, name: `item${n}`, tags: ['a', 'b', String(n % 7)], price: n * 1.25, nested: { ok: n % 2 === 0 } })) }));
  for (let n = 0; n < 6 * k; n++) f(`tree/f${n}.txt`, makeText(100 + n, 20 + n));
  for (let n = 0; n < 4 * k; n++) f(`tree/sub/g${n}.dat`, makeText(200 + n, 5 + n));
  f('tree/sub/deeper/h.txt', makeText(300, 40));
  for (const d of ['tree/sub/deeper', 'tree/sub', 'tree']) utimesSync(join(dir, d), FIXED_TIME, FIXED_TIME);
  const tarball = join(dir, 'tree.tar');
  execFileSync('tar', ['-cf', tarball, '--owner=0', '--group=0', '--numeric-owner', '-C', dir, 'tree']);
  const compressed = (name: string, cmd: string, args: string[]): string => f(name, execFileSync(cmd, [...args, bigText]));
  const gz = compressed('big.txt.gz', 'gzip', ['-c', '-n']);
  const bz2 = compressed('big.txt.bz2', 'bzip2', ['-c']);
  const xz = compressed('big.txt.xz', 'xz', ['-T1', '-c']);
  const zst = compressed('big.txt.zst', 'zstd', ['-q', '-c', '-T1']);
  const lz4 = compressed('big.txt.lz4', 'lz4', ['-q', '-c']);
  const b64 = f('text.b64', execFileSync('base64', [text]));
  const zip = join(dir, 'tree.zip');
  execFileSync('zip', ['-q', '-r', zip, 'tree'], { cwd: dir });
  const sql = f('script.sql', [
    'CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL);',
    'CREATE TABLE u(id INTEGER, t_id INTEGER REFERENCES t(id), note TEXT);',
    `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${400 * k}) INSERT INTO t SELECT x, 'n' || x, (x * 37) % 101 FROM c;`,
    'INSERT INTO u SELECT id, id % 50 + 1, printf(\'note %d\', id) FROM t WHERE id % 3 = 0;',
    'CREATE INDEX i ON u(t_id);',
    'SELECT t.id % 7, count(*), avg(score) FROM t JOIN u ON u.t_id = t.id GROUP BY 1 ORDER BY 1;',
    "SELECT group_concat(name, ',') FROM (SELECT name FROM t WHERE score > 95 ORDER BY name LIMIT 20);",
    "SELECT json_object('n', count(*)) FROM t WHERE name LIKE 'n1%';",
  ].join('\n') + '\n');
  const lua = f('script.lua', `
local n, caught = 0, 0
local function risky(i)
  if i % 3 == 0 then error({code = i}) end
  if i % 5 == 0 then error("five " .. i) end
  return i * 2
end
for i = 1, ${2000 * k} do
  local ok, v = pcall(risky, i)
  if ok then n = n + v else caught = caught + 1 end
end
local t = {}
for w in io.lines and ("the quick brown fox jumps over the lazy dog"):gmatch("%a+") or {} do t[#t + 1] = w:upper() end
table.sort(t)
local co = coroutine.wrap(function() for i = 1, 10 do coroutine.yield(i) end end)
local s = 0
for _ = 1, 10 do s = s + co() end
print(n, caught, table.concat(t, " "), s)
`);
  const tcl = f('script.tcl', `
set d [dict create]
for {set i 0} {$i < ${1500 * k}} {incr i} {
  dict incr d [expr {$i % 17}]
  if {[catch {expr {1 / ($i % 5)}} err]} { dict incr d err }
}
set l [lsort -integer [dict values $d]]
puts "[llength $l] [lindex $l end] [string toupper [string range "hello world" 0 4]]"
`);
  const perl = f('script.pl', `
use strict; use warnings;
my ($n, $caught) = (0, 0);
for my $i (1 .. ${3000 * k}) {
  my $r = eval { die "odd $i\\n" if $i % 2; die { code => $i } if $i % 7 == 0; $i };
  if ($@) { $caught++ } else { $n += $r }
}
my %h;
open my $fh, '<', $ARGV[0] or die;
while (<$fh>) { $h{lc $_}++ for /(\\w+)/g }
my @top = (sort { $h{$b} <=> $h{$a} || $a cmp $b } keys %h)[0 .. 4];
printf "%d %d %s\\n", $n, $caught, join ',', @top;
`);
  const python = f('exceptions.py', `
import sys
n = caught = 0
class Boom(Exception):
    pass
def risky(i):
    if i % 3 == 0:
        return 10 // (i % 3)
    if i % 5 == 0:
        raise Boom(i)
    return i
for i in range(${3000 * k}):
    try:
        n += risky(i)
    except ZeroDivisionError:
        caught += 1
    except Boom as e:
        caught += e.args[0] % 2
    finally:
        n += 1
def gen(limit):
    for x in range(limit):
        yield x * x
words = open(sys.argv[1]).read().split()
freq = {}
for w in words:
    freq[w] = freq.get(w, 0) + 1
print(n, caught, sum(gen(1000)), sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
`);
  const pythonSignals = f('signals.py', `
import os, signal
got = []
def handler(signum, frame):
    got.append(signum)
signal.signal(signal.SIGUSR1, handler)
signal.signal(signal.SIGALRM, handler)
for i in range(${10 * k}):
    os.kill(os.getpid(), signal.SIGUSR1 if i % 2 else signal.SIGALRM)
print(len(got), sorted(set(got)))
`);
  const pythonFork = f('fork.py', `
import os
pids = []
for j in range(${2 * k}):
    pid = os.fork()
    if pid == 0:
        os._exit(sum(i * i for i in range(2000 * (j + 1))) % 251)
    pids.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
print(codes)
`);
  // Subshells, command substitution and a pipeline of builtins: bash forks but never execs.
  const bashFork = f('subshells.sh', `
n=0
while IFS= read -r line; do n=$((n + 1)); done < "$1"
words=$(while IFS= read -r line; do set -- $line; echo $#; done < "$1" | { s=0; while read -r c; do s=$((s + c)); done; echo $s; })
(for ((i = 0; i < ${100 * k}; i++)); do :; done; exit 3); st=$?
{ n=$((n * 2)); exit 5; } &
wait $!; job=$?
printf '%d lines, %s words, subshell %d, job %d\\n' "$n" "$words" "$st" "$job"
`);
  const bash = f('script.sh', `
declare -A count
n=0
while IFS= read -r line; do
  for w in $line; do count[$w]=$(( \${count[$w]:-0} + 1 )); n=$((n + 1)); done
done < "$1"
fib() { local a=0 b=1 i; for ((i = 0; i < $1; i++)); do local t=$((a + b)); a=$b; b=$t; done; FIB=$a; }
fib 40
hits=0
trap 'hits=$((hits + 1))' USR1
for i in 1 2 3; do kill -USR1 $$; done
s=""; for ((i = 0; i < ${200 * k}; i++)); do s+="\${i: -1}"; done
printf '%d words, %d distinct, fib %s, %d signals, %d chars\\n' "$n" "\${#count[@]}" "$FIB" "$hits" "\${#s}"
`);
  const dash = f('script.dash', `
i=0; s=0
while [ $i -lt ${2000 * k} ]; do s=$((s + i * i % 7)); i=$((i + 1)); done
case "$s" in *[!0-9]*) echo bad ;; *) echo "sum $s" ;; esac
`);
  const awk = f('script.awk', `
BEGIN { FS = "," }
{ sum[$4] += $3; n[$4]++; names = names substr($2, 1, 2) }
$1 % 10 == 0 { gsub(/item/, "I", $2); last = $2 }
END { for (k in sum) printf "%s %.2f %d\\n", k, sum[k] / n[k], n[k]; print length(names), last }
`);
  const sed = f('script.sed', 's/\\(fox\\|dog\\)/<&>/g\n/^the/ { s/the/THE/; h }\n$ { G }\n');
  const jq = f('filter.jq', '[.items[] | select(.nested.ok) | {id, t: (.tags | join("-")), p: (.price * 2)}] | group_by(.id % 5) | map(length)');
  const bc = f('script.bc', `scale=${40 * k}\n4*a(1)\ne(1)\nsqrt(2)\ndefine f(n) { if (n < 2) return n; return f(n-1) + f(n-2) }\nf(${18 + k})\nquit\n`);
  const pdf = f('doc.pdf', makePdf(8 * k));
  // A damaged copy: the xref table points nowhere, so qpdf reconstructs it (through its exception paths).
  const badPdf = f('damaged.pdf', Buffer.from(readFileSync(pdf, 'latin1').replace(/startxref\n\d+/, 'startxref\n12345'), 'latin1'));
  const diffOld = f('old.txt', makeText(400 + k, 200));
  const diffNew = f('new.txt', makeText(400 + k, 200).replace(/fox/g, 'cat').replace(/^the /gm, 'a '));
  const patch = f('change.patch', spawnSync('diff', ['-u', diffOld, diffNew], { encoding: 'utf8' }).stdout);
  const asm = f('prog.s', '.globl _start\n_start:\n  mov $60, %eax\n  xor %edi, %edi\n  syscall\n');
  const mangled = f('mangled.txt', ['_ZNSt6vectorIiSaIiEE9push_backERKi', '_ZN9__gnu_cxx13new_allocatorIcE8allocateEmPKv', '_ZNKSt5ctypeIcE8do_widenEc', '_ZSt4cout', '_Z3fooPFivE'].join('\n').repeat(20 * k) + '\n');
  f('Makefile', 'all: a b\na:\n\t@echo a > /dev/null\nb:\n\t@true\n');
  return {
    dir, text, bigText, numbers, json, csv, tree: join(dir, 'tree'), tarball, gz, bz2, xz, zst, lz4, sql, lua, tcl, perl, python, pythonSignals, pythonFork,
    bash, bashFork, dash, awk, sed, jq, bc, pdf, badPdf, diffOld, diffNew, patch, asm, elf: '/usr/bin/ls', mangled, b64, zip, built,
  };
}

/** Build the programs of corpus/benign. */
function buildPrograms(root: string, out: string): Record<string, string> {
  mkdirSync(out, { recursive: true });
  const src = join(root, 'corpus', 'benign');
  const build = (name: string, cc: string, file: string, flags: string[]): string => {
    const exe = join(out, name);
    execFileSync(cc, ['-O2', '-g0', ...flags, '-o', exe, join(src, file)], { stdio: 'pipe' });
    return exe;
  };
  return {
    contexts: build('contexts', 'gcc', 'contexts.c', []),
    exceptions: build('exceptions', 'g++', 'exceptions.cc', []),
    probe: build('probe', 'gcc', 'probe.c', ['-pthread']),
  };
}

async function recordRun(argv: string[], bundle: string, stdin: string | null): Promise<{ ok: true; warnings: string[]; stopped: string | null } | { ok: false; message: string }> {
  const { record } = await import('../src/sources/recorder/record.js');
  const { withRecordDefaults } = await import('../src/sources/recorder/record-options.js');
  try {
    const r = await record(withRecordDefaults({
      argv, output: bundle, force: true, timeoutSec: 900, maxInsns: 2_000_000_000, hardware: false, stdio: 'pipe',
      stdin: stdin ?? undefined, guestEnv: { PYTHONHASHSEED: '0', LC_ALL: 'C.UTF-8' },
      notice: () => {},
    }));
    return { ok: true, warnings: r.manifest.warnings ?? [], stopped: r.manifest.exit.stopped ?? null };
  } catch (e) {
    return { ok: false, message: (e as Error).message.split('\n')[0] };
  }
}

function withRecording<T>(bundle: string, f: (r: Recording) => T): T {
  const rec = openRecording(bundle);
  try {
    return f(rec);
  } finally {
    rec.close();
  }
}

/** Every stream of a bundle analysed with its own detectors. */
function analyzeBundle(bundle: string, options: AnalyzeOptions): AnalyzeResult[] {
  return withRecording(bundle, (rec) => analyzeRecording(rec, options));
}

/** The processes the recorder saw but did not trace, with its reason (nothing escapes silently). */
function untracedProcesses(bundle: string): string[] {
  return withRecording(bundle, (rec) => rec.processes.filter((p) => p.untraced !== null).map((p) => `process ${p.pid}: ${p.untraced}`));
}

/**
 * Where the recorded trace enters the function `symbol`, over every stream:
 * true if it does so in a context kept apart from where the trace starts
 * (another stream, i.e. another thread or process, or another address
 * space). Null if it never enters it.
 */
function traceEntersApart(bundle: string, symbol: string): boolean | null {
  return withRecording(bundle, (rec) => {
    let seen = false;
    let apart = false;
    let first: string | undefined;
    for (const input of traceInputs(rec)) {
      let lo = NaN;
      let hi = NaN;
      for (const m of input.modules.modules) {
        const s = m.elf?.symbols.find((x) => x.name === symbol);
        if (s) {
          lo = s.value + m.bias;
          hi = lo + Math.max(1, s.size);
        }
      }
      const walker = new ControlFlowWalker(new InsnDecoder(new PacketDecoder(input.trace), input.config, input.image), [
        {
          onTransfer(_k: TransferKind, _from: number, to: number, _size: number, _n: number, cr3: number) {
            const where = `${input.stream.index}:${cr3}`;
            first ??= where;
            if (to >= lo && to < hi) {
              seen = true;
              if (where !== first) apart = true;
            }
          },
        },
      ]);
      walker.run();
    }
    return seen ? apart : null;
  });
}

interface ProbeResult {
  follows: boolean;
  said: string;
}

/** Ask the recorder whether it follows a forked child, a thread, an exec. */
async function probeRecorder(probe: string, work: string): Promise<Record<Need, ProbeResult>> {
  const out = {} as Record<Need, ProbeResult>;
  for (const need of ['fork', 'thread', 'exec'] as const) {
    const bundle = join(work, `probe-${need}`);
    const r = await recordRun([probe, need], bundle, null);
    if (!r.ok) {
      out[need] = { follows: false, said: r.message };
      continue;
    }
    // Followed means: the marker ran, and the recorder kept what ran apart
    // (a thread or a child in its own stream, or another address space),
    // with no process left untraced.
    const stoppedShort = r.stopped === 'exec' || r.stopped === 'clone';
    const seen = stoppedShort ? null : traceEntersApart(bundle, need === 'thread' ? 'probe_thread_marker' : 'probe_child_marker');
    const follows = seen === true && untracedProcesses(bundle).length === 0;
    const said = (r.warnings.length > 0 ? r.warnings : [stoppedShort ? `stopped at ${r.stopped}` : '']).filter((x) => x !== '').join('; ');
    const what = need === 'thread' ? 'second thread' : need === 'fork' ? 'forked child' : "exec'd image";
    out[need] = {
      follows,
      said: follows ? said : said || (seen === null ? `no instruction of the ${what} is in the trace` : `the ${what}'s instructions are in the trace but not kept apart from the first thread`),
    };
  }
  return out;
}

interface RunResult {
  variant: 'a' | 'b';
  instructions: number;
  findings: { detector: string; kind: string; message: string; pid?: number | null; tid?: number | null }[];
  uncheckedUnbounded: number;
  seconds: number;
}

interface ProgramResult {
  name: string;
  traits: Trait[];
  status: 'analysed' | 'not recordable yet' | 'recording failed';
  why?: string;
  runs: RunResult[];
  /** `unseenSwitches`: stack switches the slow path could not check (prepared before its decode start); absent in older results files. */
  flowguard?: { checks: number; fast: number; slowWindows: number; fastSeconds: number; slowSeconds: number; findings: number; unseenSwitches?: number };
}

async function evaluateProgram(p: Program, inputs: Record<'a' | 'b', Inputs>, work: string, probes: Record<Need, ProbeResult>, reuse: boolean): Promise<ProgramResult> {
  const res: ProgramResult = { name: p.name, traits: p.traits, status: 'analysed', runs: [] };
  const missing = (p.needs ?? []).filter((n) => !probes[n].follows);
  const bundles: Partial<Record<'a' | 'b', string>> = {};
  for (const v of ['a', 'b'] as const) {
    const bundle = join(work, 'bundles', `${p.name}-${v}`);
    const argv = p.argv(inputs[v]);
    if (!existsSync(argv[0])) {
      return { ...res, status: 'recording failed', why: `${argv[0]} is not installed` };
    }
    if (!(reuse && existsSync(join(bundle, 'manifest.json')))) {
      const r = await recordRun(argv, bundle, p.stdin ? p.stdin(inputs[v]) : null);
      if (!r.ok) {
        if (missing.length > 0) return { ...res, status: 'not recordable yet', why: `needs ${missing.join(', ')}; recorder: ${r.message}` };
        return { ...res, status: 'recording failed', why: r.message };
      }
      // A run the recorder stopped at a thread, a child or an exec it does not follow is incomplete.
      if (r.stopped === 'clone' || r.stopped === 'exec') {
        const said = r.warnings.find((w) => /does not follow/.test(w)) ?? `stopped at ${r.stopped}`;
        return { ...res, status: 'not recordable yet', why: `${missing.length > 0 ? `needs ${missing.join(', ')}; ` : ''}recorder: ${said}` };
      }
    }
    // A process the recorder saw but did not trace leaves the run incomplete.
    const untraced = untracedProcesses(bundle);
    if (untraced.length > 0) return { ...res, status: 'not recordable yet', why: `${missing.length > 0 ? `needs ${missing.join(', ')}; ` : ''}recorder: ${untraced.join('; ')}` };
    bundles[v] = bundle;
  }
  if (missing.length > 0) {
    const said = missing.map((n) => `${n}: ${probes[n].said}`).join('; ');
    return { ...res, status: 'not recordable yet', why: `needs ${missing.join(', ')}; recorder probe: ${said}` };
  }
  // Every thread's stream, each with its own detectors; the run's numbers are their sums.
  const sum = (rs: AnalyzeResult[], f: (r: AnalyzeResult) => number): number => rs.reduce((n, r) => n + f(r), 0);
  for (const v of ['a', 'b'] as const) {
    const rs = analyzeBundle(bundles[v]!, { detectors: defaultDetectors() });
    res.runs.push({
      variant: v,
      instructions: sum(rs, (r) => r.flow.instructions),
      findings: rs.flatMap((r) => r.findings.map((f) => ({ detector: f.detector, kind: f.kind, message: f.message, pid: f.pid, tid: f.tid }))),
      uncheckedUnbounded: sum(rs, (r) => r.unchecked.filter((u) => /cannot be bounded/.test(u.reason)).reduce((n, u) => n + u.count, 0)),
      seconds: sum(rs, (r) => r.seconds),
    });
  }
  // FlowGuard: trained on run b (every thread), checking run a.
  const policy = join(work, 'flowguard', `${p.name}.json`);
  mkdirSync(dirname(policy), { recursive: true });
  rmSync(policy, { force: true });
  withRecording(bundles.b!, (rec) => trainFlowGuardPolicy(policy, traceInputs(rec).map((i) => i.trace)));
  const fg = analyzeBundle(bundles.a!, { detectors: ['flowguard'], policyFile: policy });
  const stat = (key: string): number => sum(fg, (r) => r.detectors[0].stats[key] ?? 0);
  res.flowguard = { checks: stat('checks'), fast: stat('fastSettled'), slowWindows: stat('slowWindows'), fastSeconds: stat('fastSeconds'), slowSeconds: stat('slowSeconds'), findings: sum(fg, (r) => r.findings.length),
    unseenSwitches: sum(fg, (r) => r.unchecked.filter((u) => u.reason === PREPARED_UNSEEN_REASON).reduce((n, u) => n + u.count, 0)),
  };
  return res;
}

const pct = (a: number, b: number): string => (b === 0 ? 'n/a' : `${((100 * a) / b).toFixed(1)}%`);

function report(results: ProgramResult[], markdown: boolean, title = 'Benign set'): string[] {
  const lines: string[] = [];
  const analysed = results.filter((r) => r.status === 'analysed');
  const pending = results.filter((r) => r.status !== 'analysed');
  const insns = analysed.reduce((n, r) => n + r.runs.reduce((m, x) => m + x.instructions, 0), 0);
  const findings = analysed.reduce((n, r) => n + r.runs.reduce((m, x) => m + x.findings.length, 0), 0);
  const unchecked = analysed.reduce((n, r) => n + r.runs.reduce((m, x) => m + x.uncheckedUnbounded, 0), 0);
  const fgChecks = analysed.reduce((n, r) => n + (r.flowguard?.checks ?? 0), 0);
  const fgFast = analysed.reduce((n, r) => n + (r.flowguard?.fast ?? 0), 0);
  const fgSlow = analysed.reduce((n, r) => n + (r.flowguard?.slowWindows ?? 0), 0);
  const fgFastSec = analysed.reduce((n, r) => n + (r.flowguard?.fastSeconds ?? 0), 0);
  const fgSlowSec = analysed.reduce((n, r) => n + (r.flowguard?.slowSeconds ?? 0), 0);
  const fgFindings = analysed.reduce((n, r) => n + (r.flowguard?.findings ?? 0), 0);
  const fgUnseen = analysed.reduce((n, r) => n + (r.flowguard?.unseenSwitches ?? 0), 0);
  const fgUnseenMissing = analysed.filter((r) => r.flowguard !== undefined && r.flowguard.unseenSwitches === undefined).length;
  if (markdown) {
    lines.push('| program | exercises | instructions (runs a + b) | findings | unbounded jumps (unchecked) | FlowGuard fast path |');
    lines.push('|---|---|---|---|---|---|');
    for (const r of analysed) {
      const n = r.runs.reduce((m, x) => m + x.instructions, 0);
      const f = r.runs.reduce((m, x) => m + x.findings.length, 0);
      const u = r.runs.reduce((m, x) => m + x.uncheckedUnbounded, 0);
      const fg = r.flowguard;
      lines.push(`| ${r.name} | ${r.traits.join(', ')} | ${n.toLocaleString('en-US')} | ${f} | ${u} | ${fg ? `${fg.fast}/${fg.checks}` : '-'} |`);
    }
    lines.push('');
    if (pending.length > 0) {
      lines.push('| program | exercises | status |');
      lines.push('|---|---|---|');
      for (const r of pending) lines.push(`| ${r.name} | ${r.traits.join(', ')} | ${r.status}: ${r.why} |`);
      lines.push('');
    }
  } else {
    for (const r of results) {
      if (r.status !== 'analysed') {
        lines.push(`${r.name.padEnd(20)} ${r.status}: ${r.why}`);
        continue;
      }
      const n = r.runs.reduce((m, x) => m + x.instructions, 0);
      const f = r.runs.flatMap((x) => x.findings);
      const fg = r.flowguard!;
      lines.push(`${r.name.padEnd(20)} ${String(n).padStart(12)} insns  ${String(f.length).padStart(3)} findings  fast path ${fg.fast}/${fg.checks}${f.length ? '  ' + f.map((x) => `${x.detector}/${x.kind}`).join(' ') : ''}`);
    }
    lines.push('');
  }
  lines.push(
    `${title}: ${analysed.length} programs analysed (${analysed.length * 2} recordings, ${insns.toLocaleString('en-US')} instructions): ${findings} findings at default thresholds; ${unchecked} indirect jumps with unbounded target sets counted as unchecked; ${pending.length} programs not analysed (${pending.filter((r) => r.status === 'not recordable yet').length} not recordable yet).`,
  );
  lines.push(
    `FlowGuard (trained on run b, checking run a): ${fgFast} of ${fgChecks} checks settled on the fast path (${pct(fgFast, fgChecks)}); fast path ${fgChecks > 0 ? ((1e6 * fgFastSec) / fgChecks).toFixed(1) : 'n/a'} µs per check, slow path ${fgSlow > 0 ? ((1e3 * fgSlowSec) / fgSlow).toFixed(1) : 'n/a'} ms per window (${fgSlow} windows); ${fgFindings} FlowGuard findings; ${fgUnseen} stack switches in slow-path windows counted as unchecked (prepared before the window's decode start)${fgUnseenMissing > 0 ? ` (${fgUnseenMissing} programs' results predate that count)` : ''}.`,
  );
  return lines;
}

/** The results of several results files, in the set's order (a program in two files: the later file's). */
function mergeResults(files: string[]): ProgramResult[] {
  const byName = new Map<string, ProgramResult>();
  for (const f of files) {
    const data = JSON.parse(readFileSync(f, 'utf8')) as { results: ProgramResult[] };
    for (const r of data.results) byName.set(r.name, r);
  }
  const order = [...PROGRAMS, ...HELD_OUT].map((p) => p.name);
  for (const name of byName.keys()) if (!order.includes(name)) throw new Error(`${name} is not in the benign set`);
  return order.filter((n) => byName.has(n)).map((n) => byName.get(n)!);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const root = repoRoot();
  let work = join(root, 'build', 'benign');
  let only: string[] | null = null;
  let jsonOut: string | null = null;
  let merge: string[] | null = null;
  const reuse = args.includes('--reuse');
  const markdown = args.includes('--markdown');
  const heldOut = args.includes('--held-out');
  const set = heldOut ? HELD_OUT : PROGRAMS;
  const title = heldOut ? 'Held-out set' : 'Benign set';
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--work') work = args[++i];
    else if (args[i] === '--only') only = args[++i].split(',');
    else if (args[i] === '--json') jsonOut = args[++i];
    else if (args[i] === '--merge') merge = args[++i].split(',');
  }
  if (merge !== null) {
    for (const l of report(mergeResults(merge), markdown, title)) console.log(l);
    return;
  }
  const unknown = (only ?? []).filter((n) => !set.some((p) => p.name === n));
  if (unknown.length > 0) throw new Error(`not in the ${heldOut ? 'held-out' : 'benign'} set: ${unknown.join(', ')}`);
  for (const d of ['bundles', 'probe', 'flowguard']) mkdirSync(join(work, d), { recursive: true });
  const built = buildPrograms(root, join(work, 'bin'));
  const inputs = { a: makeInputs(work, 'a', built), b: makeInputs(work, 'b', built) };
  const probes = await probeRecorder(built.probe, join(work, 'probe'));
  for (const [need, r] of Object.entries(probes)) console.error(`recorder follows ${need}: ${r.follows ? 'yes' : 'no'} (${r.said || 'no message'})`);
  const list = set.filter((p) => only === null || only.includes(p.name));
  const results: ProgramResult[] = [];
  const json = jsonOut ?? join(work, heldOut ? 'held-out.json' : 'results.json');
  for (const p of list) {
    const t0 = Date.now();
    const r = await evaluateProgram(p, inputs, work, probes, reuse);
    results.push(r);
    writeFileSync(json, JSON.stringify({ probes, results }, null, 1) + '\n');
    console.error(`${p.name}: ${r.status}${r.why ? ` (${r.why})` : ''}, ${r.runs.reduce((n, x) => n + x.findings.length, 0)} findings, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  for (const l of report(results, markdown, title)) console.log(l);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`eval-benign: ${(e as Error).stack ?? e}`);
    process.exitCode = 2;
  });
}
