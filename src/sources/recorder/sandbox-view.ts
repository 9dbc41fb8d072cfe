/**
 * What a confined program sees of the host's files: the sandbox's file view.
 * The policy (SECURITY.md, "The sandbox"):
 *
 * - The system's code, read-only, at the same paths: /usr, and the top-level
 *   library and binary directories (/bin, /sbin, /lib, /lib32, /lib64,
 *   /libx32), recreated as the links they are on a merged-/usr system. A
 *   program the target execs later (issue 21: `sh -c 'gzip | gzip -d'`) is
 *   therefore visible, with its libraries and loader.
 * - A filtered /etc, read-only: only the entries programs read to start and
 *   run (loader cache, time zone, name service and locale settings, the
 *   alternatives links, public CA certificates, interpreter settings), never
 *   one that may hold a secret (shadow, gshadow, sudoers, ssh, ssl/private,
 *   machine-id, service credentials). passwd, group, hosts and hostname are
 *   generated: no user or host names of this machine.
 * - The program, and every file or directory named on the analyst's command
 *   line, read-only at the same path; the private libraries the program's
 *   DT_RUNPATH/DT_RPATH finds (private-libraries.ts), as files; paths the analyst adds with
 *   --allow-read. Never a socket, FIFO or device. A re-run shows the
 *   bundle's copy of the program at the recorded path instead of any host
 *   file (and the bundle's copies of the program's own shared libraries,
 *   those mapped from outside the system directories, at theirs), and none
 *   of the files its arguments name.
 * - Nothing else of the host: not /root, /home, /run, /var, /srv, /mnt,
 *   /media, /opt, /boot, /sys, nor the host's /tmp (the sandbox has its own).
 *
 * The recorder reads the files the target mapped as code (to copy them into
 * the bundle) only through {@link visibleHostFile}: a path the target named
 * is read on the host only if the sandbox showed that same host file.
 */
import { lstatSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { privateLibraries } from './private-libraries.js';

/** Directories holding the system's code, shown read-only. */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/**
 * /etc entries shown read-only when they exist. Names ending in `*` match
 * every entry with that prefix (python3, python3.11, ...).
 */
const ETC_ALLOWED = [
  'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'ld.so.preload',
  'localtime', 'timezone', 'locale.alias', 'locale.conf', 'locale.gen',
  'nsswitch.conf', 'host.conf', 'gai.conf', 'protocols', 'services', 'networks', 'rpc', 'ethertypes',
  'alternatives', 'os-release', 'lsb-release', 'debian_version', 'issue',
  'mime.types', 'magic', 'magic.mime', 'mailcap',
  'ssl/certs', 'ssl/openssl.cnf', 'ca-certificates', 'ca-certificates.conf',
  'inputrc', 'bash.bashrc', 'shells', 'terminfo', 'fonts', 'perl', 'python*',
];

/** Sandbox mount points that are the sandbox's own: a command-line path there is not bound from the host. */
const SANDBOX_OWN = ['/proc', '/dev', '/tmp'];

/** Generated /etc files (constant: no names from this machine). */
export function generatedEtc(uid: number, gid: number): Record<string, string> {
  const users = ['root:x:0:0:root:/root:/bin/sh', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin'];
  const groups = ['root:x:0:', 'nogroup:x:65534:'];
  if (uid !== 0 && uid !== 65534) users.push(`user:x:${uid}:${gid}:user:/tmp:/bin/sh`);
  if (gid !== 0 && gid !== 65534) groups.push(`user:x:${gid}:`);
  return {
    passwd: users.join('\n') + '\n',
    group: groups.join('\n') + '\n',
    hosts: `127.0.0.1\tlocalhost\n127.0.1.1\t${SANDBOX_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    hostname: `${SANDBOX_HOSTNAME}\n`,
  };
}

/** The host name inside the sandbox (its own UTS namespace). */
export const SANDBOX_HOSTNAME = 'sandbox';

export interface SandboxView {
  /** Host paths (files or directories) shown read-only at the same path. */
  readonly shared: readonly string[];
  /** Host files shown read-only at another path: a bundle's program copy, generated /etc files. */
  readonly placed: readonly { host: string; guest: string }[];
  /** Symbolic links to create (a merged-/usr system's /bin -> usr/bin, ...). */
  readonly links: readonly { target: string; path: string }[];
}

let systemPart: { shared: string[]; links: { target: string; path: string }[] } | null = null;

/** The system directories and /etc entries of this host (computed once). */
function systemView(): { shared: string[]; links: { target: string; path: string }[] } {
  if (systemPart !== null) return systemPart;
  const shared: string[] = [];
  const links: { target: string; path: string }[] = [];
  for (const d of SYSTEM_DIRS) {
    try {
      const st = lstatSync(d);
      if (st.isSymbolicLink()) links.push({ target: readlinkSync(d), path: d });
      else if (st.isDirectory()) shared.push(d);
    } catch {
      // not on this system
    }
  }
  let etc: string[] = [];
  try {
    etc = readdirSync('/etc');
  } catch {
    // no /etc: nothing to show
  }
  for (const pattern of ETC_ALLOWED) {
    if (pattern.endsWith('*')) {
      const prefix = pattern.slice(0, -1);
      for (const name of etc) if (name.startsWith(prefix)) shared.push(`/etc/${name}`);
    } else if (exists(`/etc/${pattern}`)) {
      shared.push(`/etc/${pattern}`);
    }
  }
  systemPart = { shared, links };
  return systemPart;
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function isUnder(path: string, root: string): boolean {
  if (path === root) return true;
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

export interface ViewRequest {
  /** The program on the host (absolute), shown at the same path. */
  program?: string;
  /** A host file shown at another path (a re-run: the bundle's copy at the recorded path). */
  programCopy?: { host: string; guest: string };
  /** More host files shown at other paths (a re-run: the bundle's copies of the program's own shared libraries at their recorded paths). */
  libraryCopies?: readonly { host: string; guest: string }[];
  /** Paths named on the analyst's command line (absolute, existing). */
  arguments?: readonly string[];
  /** More host paths the analyst allows (--allow-read), and helpers (the dormant shim). */
  allowRead?: readonly string[];
  /** Generated files: guest path -> host file holding the content. */
  generated?: readonly { host: string; guest: string }[];
  /** ptscope's own helpers (the emulator's log shim), shown at their own paths. */
  helpers?: readonly { host: string; guest: string }[];
}

/** The view for one run. */
export function sandboxView(req: ViewRequest): SandboxView {
  const sys = systemView();
  const shared = [...sys.shared];
  const placed: { host: string; guest: string }[] = [...(req.generated ?? [])];
  const add = (p: string): void => {
    if (p === '/' || SANDBOX_OWN.includes(p) || SANDBOX_OWN.some((o) => o !== '/tmp' && isUnder(p, o))) return;
    if (visibleThrough(p, shared, sys.links)) return;
    // Only files and directories: a socket stays connectable through a read-only mount.
    try {
      const st = statSync(p);
      if (!st.isFile() && !st.isDirectory()) return;
    } catch {
      return;
    }
    shared.push(p);
  };
  if (req.program !== undefined) {
    add(req.program);
    for (const lib of privateLibraries(req.program)) add(lib);
  }
  if (req.programCopy !== undefined) placed.push(req.programCopy);
  for (const c of req.libraryCopies ?? []) placed.push(c);
  for (const h of req.helpers ?? []) placed.push(h);
  for (const p of req.arguments ?? []) add(p);
  for (const p of req.allowRead ?? []) add(p);
  return { shared, placed, links: sys.links };
}

/** True if `path` lies in a system directory, which every sandbox shows (a re-run never places a bundle's file there). */
export function isSystemPath(path: string): boolean {
  return SYSTEM_DIRS.some((d) => isUnder(resolve(path), d));
}

/** True if `path` is already shown by a shared directory (directly or through one of the links). */
function visibleThrough(path: string, shared: readonly string[], links: SandboxView['links']): boolean {
  for (const s of shared) if (isUnder(path, s)) return true;
  for (const l of links) {
    if (isUnder(path, l.path)) {
      const through = resolve(dirname(l.path), l.target, relative(l.path, path));
      if (shared.some((s) => isUnder(through, s))) return true;
    }
  }
  return false;
}

/**
 * The host file that a path named by the confined program showed, or null
 * when the sandbox showed no host file there (the program's own files in
 * its private /tmp, /proc, or a path outside the view). The real path on
 * the host must stay inside what the view shares, so a link cannot lead
 * the recorder to a file the program could not see.
 */
export function visibleHostFile(view: SandboxView, guestPath: string): string | null {
  if (!isAbsolute(guestPath) || guestPath.includes('\0')) return null;
  const p = resolve(guestPath);
  for (const f of view.placed) if (f.guest === p) return f.host;
  if (!view.shared.some((s) => isUnder(p, s)) && !view.links.some((l) => isUnder(p, l.path))) return null;
  let real: string;
  try {
    real = realpathSync(p);
  } catch {
    return null;
  }
  return view.shared.some((s) => isUnder(real, realpathOrSelf(s))) ? real : null;
}

function realpathOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
