/**
 * Dormant code: the one table of library results that the analysis models,
 * with the memory layouts of their out-objects for x86-64 glibc. The
 * symbolic models (slice.ts) take their sizes and field names from here,
 * and the shim (native/dormant-shim.c) is built with a header generated
 * from the same table ({@link shimModelHeader}): it interposes these calls
 * and bounds every patched write by the object sizes below.
 *
 * Layouts, from the man pages and glibc's x86-64 headers:
 * - struct tm (ctime(3), bits/types/struct_tm.h): nine ints, then
 *   long tm_gmtoff and const char *tm_zone; 56 bytes.
 * - struct stat (stat(3type), sysdeps/unix/sysv/linux/x86/bits/struct_stat.h
 *   for x86-64): dev, ino, nlink (8 each), mode, uid, gid (4 each), pad,
 *   rdev, size, blksize, blocks (8 each), three timespecs; 144 bytes.
 * - struct utsname (uname(2), _UTSNAME_LENGTH 65): six char[65]; 390 bytes.
 * - struct timeval (gettimeofday(2)): tv_sec, tv_usec (8 each).
 * - Strings (getenv(3), secure_getenv(3), setlocale(3), nl_langinfo(3)):
 *   a pointer to a NUL-terminated string, or NULL.
 * - File contents (read(2), fread(3), fgets(3)): bytes stored at the
 *   caller's buffer; read and fread return a count, fgets the buffer or NULL.
 */

export interface Field {
  name: string;
  offset: number;
  size: number;
}

export interface Layout {
  name: string;
  size: number;
  fields: Field[];
}

function ints(names: string[], from = 0): Field[] {
  return names.map((name, i) => ({ name, offset: from + 4 * i, size: 4 }));
}

export const LAYOUTS = {
  tm: {
    name: 'struct tm',
    size: 56,
    fields: [...ints(['tm_sec', 'tm_min', 'tm_hour', 'tm_mday', 'tm_mon', 'tm_year', 'tm_wday', 'tm_yday', 'tm_isdst']), { name: 'tm_gmtoff', offset: 40, size: 8 }, { name: 'tm_zone', offset: 48, size: 8 }],
  },
  stat: {
    name: 'struct stat',
    size: 144,
    fields: [
      { name: 'st_dev', offset: 0, size: 8 },
      { name: 'st_ino', offset: 8, size: 8 },
      { name: 'st_nlink', offset: 16, size: 8 },
      { name: 'st_mode', offset: 24, size: 4 },
      { name: 'st_uid', offset: 28, size: 4 },
      { name: 'st_gid', offset: 32, size: 4 },
      { name: 'st_rdev', offset: 40, size: 8 },
      { name: 'st_size', offset: 48, size: 8 },
      { name: 'st_blksize', offset: 56, size: 8 },
      { name: 'st_blocks', offset: 64, size: 8 },
      { name: 'st_atime', offset: 72, size: 8 },
      { name: 'st_atime_nsec', offset: 80, size: 8 },
      { name: 'st_mtime', offset: 88, size: 8 },
      { name: 'st_mtime_nsec', offset: 96, size: 8 },
      { name: 'st_ctime', offset: 104, size: 8 },
      { name: 'st_ctime_nsec', offset: 112, size: 8 },
    ],
  },
  utsname: {
    name: 'struct utsname',
    size: 390,
    fields: ['sysname', 'nodename', 'release', 'version', 'machine', 'domainname'].map((name, i) => ({ name, offset: 65 * i, size: 65 })),
  },
  timeval: {
    name: 'struct timeval',
    size: 16,
    fields: [
      { name: 'tv_sec', offset: 0, size: 8 },
      { name: 'tv_usec', offset: 8, size: 8 },
    ],
  },
} satisfies Record<string, Layout>;

export type LayoutName = keyof typeof LAYOUTS;

/** Where a call's out-object is and how big it may be. */
export interface OutObject {
  /** The result pointer, or argument N (0 = rdi). */
  base: 'ret' | number;
  /** A fixed layout, or a byte count given by argument `sizeArg` (times `countArg` if set). */
  layout?: LayoutName;
  sizeArg?: number;
  countArg?: number;
  /** For strings: the bytes of the string the analysis makes symbolic. */
  bytes?: number;
}

export type ResultKind = 'int' | 'string' | 'file' | 'fd' | 'struct' | 'buffer';

/** One modelled call: how its result comes back and where its out-object lives. */
export interface LibraryModel {
  result: ResultKind;
  out: OutObject | null;
  /**
   * Each call reads the next part of its input, so a solved result holds
   * for the one call it was solved at (a SITE#N rule) and not for every
   * call at the site: a loop that reads lines until the end of a file
   * must see the solved line once, then the rest of the file.
   */
  readsOn?: true;
}

/** Symbolic bytes of a string result (its first bytes, enough for the comparisons guards make). */
export const STRING_BYTES = 32;
/** Symbolic bytes of file contents and host names (the prefix guards compare). */
export const BUFFER_BYTES = 64;

export const LIBRARY_MODELS: Record<string, LibraryModel> = {
  time: { result: 'int', out: null },
  gettimeofday: { result: 'int', out: { base: 0, layout: 'timeval' } },
  localtime: { result: 'struct', out: { base: 'ret', layout: 'tm' } },
  gmtime: { result: 'struct', out: { base: 'ret', layout: 'tm' } },
  localtime_r: { result: 'struct', out: { base: 1, layout: 'tm' } },
  gmtime_r: { result: 'struct', out: { base: 1, layout: 'tm' } },
  getenv: { result: 'string', out: { base: 'ret', bytes: STRING_BYTES } },
  secure_getenv: { result: 'string', out: { base: 'ret', bytes: STRING_BYTES } },
  setlocale: { result: 'string', out: { base: 'ret', bytes: STRING_BYTES } },
  nl_langinfo: { result: 'string', out: { base: 'ret', bytes: STRING_BYTES } },
  access: { result: 'int', out: null },
  stat: { result: 'int', out: { base: 1, layout: 'stat' } },
  lstat: { result: 'int', out: { base: 1, layout: 'stat' } },
  fopen: { result: 'file', out: null },
  open: { result: 'fd', out: null },
  read: { result: 'int', out: { base: 1, sizeArg: 2 }, readsOn: true },
  fread: { result: 'int', out: { base: 0, sizeArg: 1, countArg: 2 }, readsOn: true },
  fgets: { result: 'buffer', out: { base: 0, sizeArg: 1 }, readsOn: true },
  getuid: { result: 'int', out: null },
  geteuid: { result: 'int', out: null },
  getgid: { result: 'int', out: null },
  getpid: { result: 'int', out: null },
  getppid: { result: 'int', out: null },
  isatty: { result: 'int', out: null },
  rand: { result: 'int', out: null },
  random: { result: 'int', out: null },
  ptrace: { result: 'int', out: null },
  uname: { result: 'int', out: { base: 0, layout: 'utsname' } },
  gethostname: { result: 'int', out: { base: 0, sizeArg: 1 } },
};

/** The field of `layout` holding byte `offset`, if any. */
export function fieldAt(layout: LayoutName, offset: number): Field | null {
  return LAYOUTS[layout].fields.find((f) => offset >= f.offset && offset < f.offset + f.size) ?? null;
}

/**
 * The C header the shim is built with: one bound per modelled call, so
 * that a rule's `mem=` write lands inside the call's out-object.
 */
export function shimModelHeader(): string {
  const lines = ['/* Generated by ptscope from src/analyses/dormant/library-models.ts: do not edit. */', 'static const struct model_bound model_bounds[] = {'];
  for (const [name, m] of Object.entries(LIBRARY_MODELS)) {
    const o = m.out;
    if (o === null) continue;
    const base = o.base === 'ret' ? -1 : o.base;
    const fixed = o.layout !== undefined ? LAYOUTS[o.layout].size : (o.bytes ?? 0);
    lines.push(`  {"${name}", ${base}, ${fixed}, ${o.sizeArg ?? -1}, ${o.countArg ?? -1}},`);
  }
  lines.push('};');
  lines.push(`static const char *const modelled_calls[] = {${Object.keys(LIBRARY_MODELS).map((n) => `"${n}"`).join(', ')}};`);
  return lines.join('\n') + '\n';
}
