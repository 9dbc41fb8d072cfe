/*
 * ptscope dormant: the LD_PRELOAD shim.
 *
 * It interposes the library calls whose results commonly gate dormant code
 * (time, localtime, getenv, access, getuid, gethostname, ptrace, rand, ...)
 * and only acts on calls made from the program's own code: the main
 * executable or any shared object other than libc, the loader, the vDSO and
 * this shim (a call libc makes to itself never reaches the shim anyway; a
 * call from the program's own libcheck.so does). Two modes, both
 * set through the environment (usually with qemu's -E / QEMU_SET_ENV so that
 * qemu itself is not affected):
 *
 *   PTSCOPE_SHIM_SNAP=FILE   after each such call, append a snapshot to
 *                            FILE: the call's name, the caller's module and
 *                            the return site in it (link-time), the loaded
 *                            modules, arguments, result, the callee-saved registers and
 *                            stack pointer at entry (exactly the caller's
 *                            state after the return, since caller-saved
 *                            registers are dead by the ABI), and the
 *                            readable non-code memory of the process. This is
 *                            the concrete state ptscope's symbolic execution
 *                            starts from.
 *   PTSCOPE_SHIM_RULES=HEX   hex-encoded text, one rule per line:
 *                              NAME SITE ACTION...
 *                            SITE is the link-time address (hex) of the
 *                            instruction after the call: bare (HEX) in the
 *                            main executable, as in the first version of
 *                            this format, or MODULE:HEX in the shared
 *                            object whose file name is MODULE (e.g.
 *                            libcheck.so:11f9). SITE#N (N from 1) names
 *                            only the Nth call of NAME there, in each
 *                            process: a call that reads the next part of
 *                            its input (fgets, read, fread) in a loop.
 *                            A rule for the occurrence wins over one for
 *                            the whole site. ACTION is one of
 *                              ret=HEX           replace the result
 *                              retstr=HEX        return a pointer to these bytes (a string)
 *                              devnull           fopen/open /dev/null instead (a file that exists)
 *                              mem=ret:OFF:HEX   write bytes at result + OFF
 *                              mem=argN:OFF:HEX  write bytes at argument N + OFF
 *                              retarg=N          return argument N (fgets: the buffer)
 *
 * Which calls are modelled, and how large each one's out-object is, comes
 * from ptscope's model table (src/analyses/dormant/library-models.ts) as the
 * generated header dormant-models.h: a mem= write outside the out-object
 * of its call is cut to fit, or dropped.
 *
 * A rule line that cannot be parsed is reported on stderr (once, with its
 * line number) and ignored.
 *
 * Each interposed entry is a small assembly trampoline that stores rbx, rbp,
 * r12-r15 and rsp before jumping to the C implementation, so that the
 * registers the caller keeps across the call are recorded unchanged.
 * The shim does its own I/O with raw system calls so that it never calls
 * the functions it interposes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <link.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define HIDDEN __attribute__((visibility("hidden")))

/* Out-object bounds: call, base (-1 result, else argument), fixed size, size argument, count argument. */
struct model_bound {
  const char *name;
  int base;
  uint64_t size;
  int size_arg, count_arg;
};
#include "dormant-models.h"

/* rbx, rbp, r12, r13, r14, r15, rsp at the interposed entry. */
HIDDEN uint64_t shim_entry_regs[7];

#define TRAMPOLINE(name)                                 \
  __asm__(".text\n.globl " #name "\n.type " #name ",@function\n" #name ":\n" \
          "  mov %rbx, shim_entry_regs+0(%rip)\n"         \
          "  mov %rbp, shim_entry_regs+8(%rip)\n"         \
          "  mov %r12, shim_entry_regs+16(%rip)\n"        \
          "  mov %r13, shim_entry_regs+24(%rip)\n"        \
          "  mov %r14, shim_entry_regs+32(%rip)\n"        \
          "  mov %r15, shim_entry_regs+40(%rip)\n"        \
          "  mov %rsp, shim_entry_regs+48(%rip)\n"        \
          "  jmp impl_" #name "\n"                        \
          ".size " #name ", .-" #name "\n")

struct call_state {
  uint64_t regs[7];
  uint64_t site; /* link-time return address in the caller's module */
  int module;    /* the caller's module (index in `modules`), or -1 */
  int traced;    /* the caller is the program's own code (see the header) */
  uint64_t occurrence; /* 1 for the first traced call of this name at this site, ...; 0 if not counted */
};

/* ---- raw I/O ---------------------------------------------------------- */

static long raw_open(const char *path, int flags, int mode) { return syscall(SYS_openat, AT_FDCWD, path, flags, mode); }
static long raw_read(int fd, void *buf, size_t n) { return syscall(SYS_read, fd, buf, n); }
static void raw_write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    long w = syscall(SYS_write, fd, p, n);
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}
static void raw_close(int fd) { syscall(SYS_close, fd); }

/*
 * A memory region's bytes, page by page. A page that /proc/self/maps calls
 * readable may still fault (a file mapping past the end of its file): the
 * write of it fails with EFAULT and zeros take its place, so the record
 * keeps the length its header gave (the program could not have read that
 * page either).
 */
static void write_region(int fd, uint64_t lo, uint64_t hi) {
  static const char zeros[4096];
  for (uint64_t a = lo; a < hi;) {
    uint64_t next = (a | 4095) + 1;
    size_t n = (size_t)((next < hi ? next : hi) - a);
    const char *p = (const char *)a;
    size_t done = 0;
    while (done < n) {
      long w = syscall(SYS_write, fd, p + done, n - done);
      if (w > 0) {
        done += (size_t)w;
        continue;
      }
      if (w == -1 && errno == EINTR) continue;
      if (w == -1 && errno == EFAULT) {
        raw_write_all(fd, zeros, n - done);
        done = n;
        continue;
      }
      return;
    }
    a += n;
  }
}

/* ---- the loaded modules ---------------------------------------------- */

#define MAX_MODULES 64
#define MODULE_NAME 256

struct module {
  uint64_t lo, hi, bias;
  char path[MODULE_NAME]; /* "" for the main executable */
  const char *tag;        /* the file name rules use ("" for the main executable) */
  int traced;
};

static struct module modules[MAX_MODULES];
static int nmodules;

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash == NULL ? path : slash + 1;
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static int add_module(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  (void)data;
  if (nmodules >= MAX_MODULES) return 1;
  struct module *m = &modules[nmodules];
  m->bias = info->dlpi_addr;
  m->lo = UINT64_MAX;
  m->hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uint64_t lo = m->bias + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (lo < m->lo) m->lo = lo;
    if (hi > m->hi) m->hi = hi;
  }
  /* The first object is the executable, whatever name the loader gives it. */
  snprintf(m->path, sizeof m->path, "%s", nmodules == 0 || info->dlpi_name == NULL ? "" : info->dlpi_name);
  m->tag = base_name(m->path);
  uint64_t self = (uint64_t)(uintptr_t)&add_module;
  int is_self = self >= m->lo && self < m->hi;
  m->traced = nmodules == 0 || (m->path[0] != 0 && !is_self && !starts_with(m->tag, "libc.so") && !starts_with(m->tag, "ld-linux") &&
                                !starts_with(m->tag, "ld64.so") && !starts_with(m->tag, "linux-vdso"));
  if (m->lo < m->hi) nmodules++;
  return 0;
}

/* The modules now loaded. */
static void know_modules(void) {
  nmodules = 0;
  dl_iterate_phdr(add_module, NULL);
}

static int module_of(uint64_t a) {
  for (int i = 0; i < nmodules; i++)
    if (a >= modules[i].lo && a < modules[i].hi) return i;
  return -1;
}

static void capture(struct call_state *cs) {
  memcpy(cs->regs, shim_entry_regs, sizeof cs->regs);
  uint64_t ret = *(uint64_t *)cs->regs[6];
  /* The table is read once, and again only for a caller outside it (a module dlopen added since). */
  if (module_of(ret) < 0) know_modules();
  cs->module = module_of(ret);
  cs->traced = cs->module >= 0 && modules[cs->module].traced;
  cs->site = cs->module >= 0 ? ret - modules[cs->module].bias : ret;
}

static void *real(const char *name) { return dlsym(RTLD_NEXT, name); }

/* ---- occurrences ------------------------------------------------------ */

/*
 * How many traced calls of each name each site has made in this process,
 * so that a rule can name one of them (SITE#N) and a snapshot says which
 * one it is. An open-addressed table keyed by a hash of the caller's file
 * name, the site and the call's name; threads share it, hence the atomics.
 * When it is full a call is not counted (occurrence 0): only rules for the
 * whole site apply to it.
 */
#define OCC_SLOTS 1024
static uint64_t occ_keys[OCC_SLOTS];
static uint64_t occ_counts[OCC_SLOTS];

static uint64_t mix(uint64_t h, const char *s) {
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

static uint64_t count_occurrence(const char *name, const char *tag, uint64_t site) {
  uint64_t key = mix(mix(0xcbf29ce484222325ull ^ site * 0x9e3779b97f4a7c15ull, tag), name) | 1;
  for (uint64_t i = 0; i < OCC_SLOTS; i++) {
    uint64_t slot = (key + i) % OCC_SLOTS;
    uint64_t seen = __atomic_load_n(&occ_keys[slot], __ATOMIC_ACQUIRE);
    if (seen == 0) {
      uint64_t empty = 0;
      if (__atomic_compare_exchange_n(&occ_keys[slot], &empty, key, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) seen = key;
      else seen = empty;
    }
    if (seen == key) return __atomic_add_fetch(&occ_counts[slot], 1, __ATOMIC_ACQ_REL);
  }
  return 0;
}

/* ---- rules ------------------------------------------------------------ */

enum { ACT_RET = 1, ACT_RETSTR, ACT_DEVNULL, ACT_MEM, ACT_RETARG };

struct action {
  int kind;
  int base; /* ACT_MEM: -1 result, else argument index */
  uint64_t value;
  uint64_t offset;
  unsigned char *bytes;
  size_t len;
};

struct rule {
  char name[32];
  char module[MODULE_NAME]; /* the caller's file name; "" for the main executable */
  uint64_t site;
  uint64_t occurrence; /* 0: every call at the site */
  int nactions;
  struct action actions[8];
};

static struct rule rules[64];
static int nrules = -1;

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static unsigned char *unhex(const char *s, size_t n, size_t *out_len) {
  unsigned char *b = calloc(n / 2 + 1, 1);
  size_t k = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    int hi = hexval(s[i]), lo = hexval(s[i + 1]);
    if (hi < 0 || lo < 0) break;
    b[k++] = (unsigned char)(hi * 16 + lo);
  }
  *out_len = k;
  return b;
}

/* getenv without going through the interposed symbol. */
static const char *shim_env(const char *name) { return ((char *(*)(const char *))real("getenv"))(name); }

static void parse_action(struct rule *r, char *tok) {
  if (r->nactions >= 8) return;
  struct action *a = &r->actions[r->nactions];
  memset(a, 0, sizeof *a);
  if (strncmp(tok, "ret=", 4) == 0) {
    a->kind = ACT_RET;
    a->value = strtoull(tok + 4, NULL, 16);
  } else if (strncmp(tok, "retstr=", 7) == 0) {
    a->kind = ACT_RETSTR;
    a->bytes = unhex(tok + 7, strlen(tok + 7), &a->len);
  } else if (strncmp(tok, "retarg=", 7) == 0) {
    a->kind = ACT_RETARG;
    a->base = tok[7] - '0';
    if (a->base < 0 || a->base > 3) return;
  } else if (strcmp(tok, "devnull") == 0) {
    a->kind = ACT_DEVNULL;
  } else if (strncmp(tok, "mem=", 4) == 0) {
    char *p = tok + 4;
    a->kind = ACT_MEM;
    if (strncmp(p, "ret:", 4) == 0) {
      a->base = -1;
      p += 4;
    } else if (strncmp(p, "arg", 3) == 0) {
      a->base = p[3] - '0';
      p += 5;
    } else {
      return;
    }
    a->offset = strtoull(p, &p, 16);
    if (*p != ':') return;
    p++;
    a->bytes = unhex(p, strlen(p), &a->len);
  } else {
    return;
  }
  r->nactions++;
}

static int is_modelled(const char *name) {
  for (size_t i = 0; i < sizeof modelled_calls / sizeof modelled_calls[0]; i++)
    if (strcmp(modelled_calls[i], name) == 0) return 1;
  return 0;
}

/* One line on stderr, without the interposed calls. */
static void shim_complain(const char *what, int line) {
  char msg[160];
  int n = snprintf(msg, sizeof msg, "ptscope dormant shim: rule %d: %s; rule ignored\n", line, what);
  if (n > 0) raw_write_all(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

/* SITE: HEX (the main executable) or MODULE:HEX, then optionally #N. Returns 0 if malformed. */
static int parse_site(struct rule *r, char *site) {
  char *hash = strchr(site, '#');
  r->occurrence = 0;
  if (hash != NULL) {
    *hash = 0;
    const char *n = hash + 1;
    if (*n == 0 || strlen(n) > 9) return 0;
    for (const char *p = n; *p; p++)
      if (*p < '0' || *p > '9') return 0;
    r->occurrence = strtoull(n, NULL, 10);
    if (r->occurrence == 0) return 0;
  }
  const char *colon = strrchr(site, ':');
  const char *hex = site;
  r->module[0] = 0;
  if (colon != NULL) {
    size_t n = (size_t)(colon - site);
    if (n == 0 || n >= sizeof r->module || memchr(site, '/', n) != NULL) return 0;
    memcpy(r->module, site, n);
    r->module[n] = 0;
    hex = colon + 1;
  }
  if (*hex == 0) return 0;
  for (const char *p = hex; *p; p++)
    if (hexval(*p) < 0) return 0;
  r->site = strtoull(hex, NULL, 16);
  return 1;
}

static void load_rules(void) {
  if (nrules >= 0) return;
  nrules = 0;
  const char *hex = shim_env("PTSCOPE_SHIM_RULES");
  if (hex == NULL) return;
  size_t n;
  unsigned char *text = unhex(hex, strlen(hex), &n);
  char *save_line = NULL;
  int lineno = 0;
  for (char *line = strtok_r((char *)text, "\n", &save_line); line != NULL && nrules < 64; line = strtok_r(NULL, "\n", &save_line)) {
    lineno++;
    char *save_tok = NULL;
    char *name = strtok_r(line, " ", &save_tok);
    char *site = strtok_r(NULL, " ", &save_tok);
    if (name == NULL || site == NULL) {
      shim_complain("expected NAME SITE ACTION...", lineno);
      continue;
    }
    if (!is_modelled(name)) {
      shim_complain("not a modelled call", lineno);
      continue;
    }
    struct rule *r = &rules[nrules];
    memset(r, 0, sizeof *r);
    if (!parse_site(r, site)) {
      shim_complain("SITE must be HEX (main executable) or MODULE:HEX, then optionally #N", lineno);
      continue;
    }
    nrules++;
    snprintf(r->name, sizeof r->name, "%s", name);
    for (char *tok = strtok_r(NULL, " ", &save_tok); tok != NULL; tok = strtok_r(NULL, " ", &save_tok)) parse_action(r, tok);
  }
}

static struct rule *find_rule(const char *name, const struct call_state *cs) {
  if (!cs->traced) return NULL;
  load_rules();
  const char *tag = modules[cs->module].tag;
  struct rule *whole = NULL;
  for (int i = 0; i < nrules; i++) {
    if (rules[i].site != cs->site || strcmp(rules[i].name, name) != 0 || strcmp(rules[i].module, tag) != 0) continue;
    if (rules[i].occurrence == 0) {
      if (whole == NULL) whole = &rules[i];
    } else if (rules[i].occurrence == cs->occurrence) {
      return &rules[i];
    }
  }
  return whole;
}

/* The size of a call's out-object at `base` (0 if the model table has none). */
static uint64_t out_object_size(const char *name, int base, const uint64_t *args) {
  for (size_t i = 0; i < sizeof model_bounds / sizeof model_bounds[0]; i++) {
    const struct model_bound *m = &model_bounds[i];
    if (m->base != base || strcmp(m->name, name) != 0) continue;
    if (m->size_arg < 0) return m->size;
    uint64_t n = args[m->size_arg];
    if (m->count_arg >= 0) n = args[m->count_arg] != 0 && n > UINT64_MAX / args[m->count_arg] ? UINT64_MAX : n * args[m->count_arg];
    return n;
  }
  return 0;
}

/* Apply a rule's result and memory actions; returns the (possibly replaced) result. */
static uint64_t apply_rule(const struct rule *r, uint64_t result, const uint64_t *args) {
  if (r == NULL) return result;
  for (int i = 0; i < r->nactions; i++) {
    const struct action *a = &r->actions[i];
    if (a->kind == ACT_RET) {
      result = a->value;
    } else if (a->kind == ACT_RETSTR) {
      char *s = calloc(a->len + 1, 1);
      memcpy(s, a->bytes, a->len);
      result = (uint64_t)s;
    } else if (a->kind == ACT_RETARG) {
      result = args[a->base];
    }
  }
  for (int i = 0; i < r->nactions; i++) {
    const struct action *a = &r->actions[i];
    if (a->kind != ACT_MEM) continue;
    uint64_t base = a->base < 0 ? result : args[a->base];
    uint64_t limit = out_object_size(r->name, a->base, args);
    if (base == 0 || a->offset >= limit) continue;
    size_t len = a->len;
    if (len > limit - a->offset) len = (size_t)(limit - a->offset);
    memcpy((void *)(base + a->offset), a->bytes, len);
  }
  return result;
}

static int has_action(const struct rule *r, int kind) {
  if (r == NULL) return 0;
  for (int i = 0; i < r->nactions; i++)
    if (r->actions[i].kind == kind) return 1;
  return 0;
}

/* ---- snapshots -------------------------------------------------------- */

#define SNAP_MAGIC 0x324e5350u /* "PSN2": the caller's module and the module table */
#define MAX_SNAPSHOTS 64
#define MAX_REGION (4u << 20)
/* The snapshot file, over every process that appends to it: half of the sandbox's
   256 MiB /tmp, so that the program keeps room for its own files and a
   snapshot is never cut off by a full disk. */
#define MAX_SNAP_FILE (128ull << 20)
static int snapshots;

/*
 * One record: this header, `nmodules` module entries (struct snap_module,
 * then path_len bytes of path), then `nregions` memory regions.
 */
struct snap_header {
  uint32_t magic;
  uint32_t name_len;
  char name[32];
  uint64_t site;   /* link-time return site in module `caller` */
  uint32_t caller; /* index of the caller's module */
  uint32_t nmodules;
  uint64_t occurrence; /* the call's count at its site (struct call_state), 0 if not counted */
  uint64_t reserved;
  uint64_t regs[7];
  uint64_t args[6];
  uint64_t result;
  uint32_t nregions;
  uint32_t reserved2;
};

struct snap_module {
  uint64_t lo, hi, bias;
  uint32_t path_len;
  uint32_t traced;
};

struct region {
  uint64_t lo, hi;
};

static uint64_t parse_hex(const char **p) {
  uint64_t v = 0;
  int d;
  while ((d = hexval(**p)) >= 0) {
    v = v * 16 + (uint64_t)d;
    (*p)++;
  }
  return v;
}

/*
 * Readable, non-executable mappings (stack, heap, data, relocated GOT, libc
 * data). Of the stack mapping (which may reserve megabytes), the part from
 * 64 KiB below the caller's stack pointer up to the top.
 */
static int data_regions(struct region *out, int max, uint64_t sp) {
  static char maps[65536];
  int fd = (int)raw_open("/proc/self/maps", O_RDONLY, 0);
  if (fd < 0) return 0;
  size_t n = 0;
  long r;
  while (n < sizeof maps - 1 && (r = raw_read(fd, maps + n, sizeof maps - 1 - n)) > 0) n += (size_t)r;
  raw_close(fd);
  maps[n] = 0;
  int k = 0;
  for (const char *line = maps; *line && k < max;) {
    const char *p = line;
    uint64_t lo = parse_hex(&p);
    p++;
    uint64_t hi = parse_hex(&p);
    p++;
    int readable = p[0] == 'r', exec = p[2] == 'x';
    const char *eol = strchr(line, '\n');
    int special = strstr(line, "[vvar]") != NULL && (eol == NULL || strstr(line, "[vvar]") < eol);
    int vsys = strstr(line, "[vsyscall]") != NULL && (eol == NULL || strstr(line, "[vsyscall]") < eol);
    if (readable && !exec && sp >= lo && sp < hi) {
      if (sp - lo > 65536) lo = sp - 65536;
      if (hi - lo > MAX_REGION) hi = lo + MAX_REGION;
    }
    if (readable && !exec && !special && !vsys && hi - lo <= MAX_REGION) {
      out[k].lo = lo;
      out[k].hi = hi;
      k++;
    }
    if (eol == NULL) break;
    line = eol + 1;
  }
  return k;
}

static void snapshot(const char *name, const struct call_state *cs, const uint64_t *args, uint64_t result) {
  const char *path = shim_env("PTSCOPE_SHIM_SNAP");
  if (path == NULL || !cs->traced || snapshots >= MAX_SNAPSHOTS) return;
  static struct region regions[256];
  int nr = data_regions(regions, 256, cs->regs[6]);
  uint64_t size = sizeof(struct snap_header);
  for (int i = 0; i < nmodules; i++) size += sizeof(struct snap_module) + strlen(modules[i].path);
  for (int i = 0; i < nr; i++) size += 16 + (regions[i].hi - regions[i].lo);
  int fd = (int)raw_open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd < 0) return;
  /* A record is many writes: processes of one run (a fork, a shell's children)
     take turns, or their records would interleave. Closing the file unlocks it. */
  if (syscall(SYS_flock, fd, LOCK_EX) != 0) {
    raw_close(fd);
    return;
  }
  long end = syscall(SYS_lseek, fd, 0, SEEK_END);
  if (end < 0 || (uint64_t)end + size > MAX_SNAP_FILE) {
    raw_close(fd);
    return;
  }
  snapshots++;
  struct snap_header h;
  memset(&h, 0, sizeof h);
  h.magic = SNAP_MAGIC;
  h.name_len = (uint32_t)strlen(name);
  snprintf(h.name, sizeof h.name, "%s", name);
  h.site = cs->site;
  h.caller = (uint32_t)cs->module;
  h.nmodules = (uint32_t)nmodules;
  h.occurrence = cs->occurrence;
  memcpy(h.regs, cs->regs, sizeof h.regs);
  memcpy(h.args, args, sizeof h.args);
  /* The stack protector's canary (fs:0x28), so that canary checks on the path stay concrete. */
  __asm__("mov %%fs:0x28, %0" : "=r"(h.args[4]));
  h.result = result;
  h.nregions = (uint32_t)nr;
  raw_write_all(fd, &h, sizeof h);
  for (int i = 0; i < nmodules; i++) {
    struct snap_module m = {modules[i].lo, modules[i].hi, modules[i].bias, (uint32_t)strlen(modules[i].path), (uint32_t)modules[i].traced};
    raw_write_all(fd, &m, sizeof m);
    raw_write_all(fd, modules[i].path, m.path_len);
  }
  for (int i = 0; i < nr; i++) {
    uint64_t range[2] = {regions[i].lo, regions[i].hi};
    raw_write_all(fd, range, sizeof range);
    write_region(fd, regions[i].lo, regions[i].hi);
  }
  raw_close(fd);
}

/* ---- interposed calls ------------------------------------------------- */

#define ENTER(name, a0, a1, a2, a3)                                   \
  struct call_state cs;                                               \
  capture(&cs);                                                       \
  uint64_t args[6] = {(uint64_t)(a0), (uint64_t)(a1), (uint64_t)(a2), (uint64_t)(a3), 0, 0}; \
  cs.occurrence = cs.traced ? count_occurrence(name, modules[cs.module].tag, cs.site) : 0; \
  struct rule *rule = find_rule(name, &cs);                           \
  (void)rule;                                                         \
  (void)args

#define LEAVE(name, type, value)                                      \
  do {                                                                \
    uint64_t r_ = apply_rule(rule, (uint64_t)(value), args);          \
    snapshot(name, &cs, args, r_);                                    \
    return (type)r_;                                                  \
  } while (0)

TRAMPOLINE(time);
HIDDEN __attribute__((used)) time_t impl_time(time_t *t) {
  ENTER("time", t, 0, 0, 0);
  time_t v = ((time_t(*)(time_t *))real("time"))(t);
  if (rule != NULL && has_action(rule, ACT_RET)) {
    v = (time_t)apply_rule(rule, (uint64_t)v, args);
    if (t != NULL) *t = v;
    rule = NULL;
  }
  LEAVE("time", time_t, v);
}

TRAMPOLINE(gettimeofday);
HIDDEN __attribute__((used)) int impl_gettimeofday(struct timeval *tv, void *tz) {
  ENTER("gettimeofday", tv, tz, 0, 0);
  int v = ((int (*)(struct timeval *, void *))real("gettimeofday"))(tv, tz);
  LEAVE("gettimeofday", int, v);
}

TRAMPOLINE(localtime);
HIDDEN __attribute__((used)) struct tm *impl_localtime(const time_t *t) {
  ENTER("localtime", t, 0, 0, 0);
  struct tm *v = ((struct tm * (*)(const time_t *)) real("localtime"))(t);
  LEAVE("localtime", struct tm *, v);
}

TRAMPOLINE(gmtime);
HIDDEN __attribute__((used)) struct tm *impl_gmtime(const time_t *t) {
  ENTER("gmtime", t, 0, 0, 0);
  struct tm *v = ((struct tm * (*)(const time_t *)) real("gmtime"))(t);
  LEAVE("gmtime", struct tm *, v);
}

TRAMPOLINE(localtime_r);
HIDDEN __attribute__((used)) struct tm *impl_localtime_r(const time_t *t, struct tm *out) {
  ENTER("localtime_r", t, out, 0, 0);
  struct tm *v = ((struct tm * (*)(const time_t *, struct tm *)) real("localtime_r"))(t, out);
  LEAVE("localtime_r", struct tm *, v);
}

TRAMPOLINE(getenv);
HIDDEN __attribute__((used)) char *impl_getenv(const char *name) {
  ENTER("getenv", name, 0, 0, 0);
  char *v = ((char *(*)(const char *))real("getenv"))(name);
  LEAVE("getenv", char *, v);
}

TRAMPOLINE(secure_getenv);
HIDDEN __attribute__((used)) char *impl_secure_getenv(const char *name) {
  ENTER("secure_getenv", name, 0, 0, 0);
  char *v = ((char *(*)(const char *))real("secure_getenv"))(name);
  LEAVE("secure_getenv", char *, v);
}

TRAMPOLINE(setlocale);
HIDDEN __attribute__((used)) char *impl_setlocale(int category, const char *locale) {
  ENTER("setlocale", category, locale, 0, 0);
  char *v = ((char *(*)(int, const char *))real("setlocale"))(category, locale);
  LEAVE("setlocale", char *, v);
}

TRAMPOLINE(access);
HIDDEN __attribute__((used)) int impl_access(const char *path, int mode) {
  ENTER("access", path, mode, 0, 0);
  int v = ((int (*)(const char *, int))real("access"))(path, mode);
  LEAVE("access", int, v);
}

TRAMPOLINE(stat);
HIDDEN __attribute__((used)) int impl_stat(const char *path, struct stat *st) {
  ENTER("stat", path, st, 0, 0);
  int v = ((int (*)(const char *, struct stat *))real("stat"))(path, st);
  LEAVE("stat", int, v);
}

TRAMPOLINE(lstat);
HIDDEN __attribute__((used)) int impl_lstat(const char *path, struct stat *st) {
  ENTER("lstat", path, st, 0, 0);
  int v = ((int (*)(const char *, struct stat *))real("lstat"))(path, st);
  LEAVE("lstat", int, v);
}

TRAMPOLINE(fopen);
HIDDEN __attribute__((used)) FILE *impl_fopen(const char *path, const char *mode) {
  ENTER("fopen", path, mode, 0, 0);
  FILE *(*f)(const char *, const char *) = (FILE * (*)(const char *, const char *)) real("fopen");
  FILE *v = f(path, mode);
  if (has_action(rule, ACT_DEVNULL) && v == NULL) v = f("/dev/null", mode);
  if (has_action(rule, ACT_DEVNULL)) rule = NULL;
  LEAVE("fopen", FILE *, v);
}

TRAMPOLINE(open);
HIDDEN __attribute__((used)) int impl_open(const char *path, int flags, unsigned mode) {
  ENTER("open", path, flags, mode, 0);
  int (*f)(const char *, int, ...) = (int (*)(const char *, int, ...))real("open");
  int v = f(path, flags, mode);
  if (has_action(rule, ACT_DEVNULL) && v < 0) v = f("/dev/null", flags & O_ACCMODE);
  if (has_action(rule, ACT_DEVNULL)) rule = NULL;
  LEAVE("open", int, v);
}

#define INT_CALL0(name, type)                                   \
  TRAMPOLINE(name);                                             \
  HIDDEN __attribute__((used)) type impl_##name(void) {         \
    ENTER(#name, 0, 0, 0, 0);                                   \
    type v = ((type(*)(void))real(#name))();                    \
    LEAVE(#name, type, v);                                      \
  }

INT_CALL0(getuid, uid_t)
INT_CALL0(geteuid, uid_t)
INT_CALL0(getgid, gid_t)
INT_CALL0(getpid, pid_t)
INT_CALL0(getppid, pid_t)
INT_CALL0(rand, int)
INT_CALL0(random, long)

TRAMPOLINE(isatty);
HIDDEN __attribute__((used)) int impl_isatty(int fd) {
  ENTER("isatty", fd, 0, 0, 0);
  int v = ((int (*)(int))real("isatty"))(fd);
  LEAVE("isatty", int, v);
}

TRAMPOLINE(uname);
HIDDEN __attribute__((used)) int impl_uname(struct utsname *u) {
  ENTER("uname", u, 0, 0, 0);
  int v = ((int (*)(struct utsname *))real("uname"))(u);
  LEAVE("uname", int, v);
}

TRAMPOLINE(gethostname);
HIDDEN __attribute__((used)) int impl_gethostname(char *buf, size_t len) {
  ENTER("gethostname", buf, len, 0, 0);
  int v = ((int (*)(char *, size_t))real("gethostname"))(buf, len);
  LEAVE("gethostname", int, v);
}

TRAMPOLINE(ptrace);
HIDDEN __attribute__((used)) long impl_ptrace(int request, void *pid, void *addr, void *data) {
  ENTER("ptrace", request, pid, addr, data);
  long v = ((long (*)(int, ...))real("ptrace"))(request, pid, addr, data);
  LEAVE("ptrace", long, v);
}

TRAMPOLINE(read);
HIDDEN __attribute__((used)) ssize_t impl_read(int fd, void *buf, size_t n) {
  ENTER("read", fd, buf, n, 0);
  ssize_t v = ((ssize_t(*)(int, void *, size_t))real("read"))(fd, buf, n);
  LEAVE("read", ssize_t, v);
}

TRAMPOLINE(gmtime_r);
HIDDEN __attribute__((used)) struct tm *impl_gmtime_r(const time_t *t, struct tm *out) {
  ENTER("gmtime_r", t, out, 0, 0);
  struct tm *v = ((struct tm * (*)(const time_t *, struct tm *)) real("gmtime_r"))(t, out);
  LEAVE("gmtime_r", struct tm *, v);
}

TRAMPOLINE(nl_langinfo);
HIDDEN __attribute__((used)) char *impl_nl_langinfo(nl_item item) {
  ENTER("nl_langinfo", item, 0, 0, 0);
  char *v = ((char *(*)(nl_item))real("nl_langinfo"))(item);
  LEAVE("nl_langinfo", char *, v);
}

TRAMPOLINE(fread);
HIDDEN __attribute__((used)) size_t impl_fread(void *buf, size_t size, size_t n, FILE *f) {
  ENTER("fread", buf, size, n, f);
  size_t v = ((size_t(*)(void *, size_t, size_t, FILE *))real("fread"))(buf, size, n, f);
  LEAVE("fread", size_t, v);
}

TRAMPOLINE(fgets);
HIDDEN __attribute__((used)) char *impl_fgets(char *buf, int n, FILE *f) {
  ENTER("fgets", buf, n, f, 0);
  char *v = ((char *(*)(char *, int, FILE *))real("fgets"))(buf, n, f);
  LEAVE("fgets", char *, v);
}
