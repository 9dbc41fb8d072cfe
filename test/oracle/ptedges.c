/*
 * ptedges: the AFL edge bitmap of an Intel PT trace from libipt's
 * instruction flow decoder (Debian's libipt 2.0.5), as a fuzzer built on
 * libipt would compute it. It is the baseline of ptscope's edge-coverage
 * benchmark (bench/edges.ts) and a differential check of ptscope's edge
 * decoder (test/edges-exact.test.ts).
 *
 * Usage:
 *   ptedges edges [--cpu F/M[/S]|none] [--raw SPEC]... [--map-size N] TRACE.pt
 *   ptedges bench [--cpu ...] [--raw SPEC]... [--map-size N] [--runs N] TRACE.pt
 *
 * `edges` decodes once and prints `edges N` (edges taken), `distinct N`
 * (edge ids hit) and `bitmap_fnv1a64 H` (FNV-1a 64 of the bucketed bitmap).
 * `bench` decodes the same trace again and again into one reused bitmap —
 * a new instruction decoder per run over the same image and section cache,
 * so libipt's caches stay warm — for at least one second and at least
 * --runs runs (default 1000), then prints `runs`, `seconds` (per run),
 * `traces_per_second`, `mbps` and the `edges`/`distinct`/`bitmap_fnv1a64`
 * of the last run.
 *
 * Edges are defined as in ptscope's src/flow/edges/edge-coverage.ts: a
 * block starts at the first instruction that runs after a branch
 * instruction, an asynchronous branch, a tracing enable (not a PSB+
 * status), an overflow, or the start of decoding; entering block `cur`
 * counts edge (loc(prev) >> 1) ^ loc(cur), loc being the MurmurHash3
 * finalizer of the block address masked to the map size, loc(none) = 0;
 * there is no `prev` after the start, an overflow or a decode error (then
 * decoding goes on at the next PSB). An instruction that libipt decodes
 * and then fails on (its branch has no trace) ran, as ptxed shows it, but
 * ends no block. Counts are exact and bucketed as
 * afl-fuzz does (1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+).
 *
 * A raw image SPEC is FILE[:FROM[-TO]]:ADDR (ptxed's syntax).
 * Argument and file errors: one line on stderr, exit status 2.
 */

#define _POSIX_C_SOURCE 200809L

#include <intel-pt.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EXIT_USAGE = 2 };

static const double BENCH_MIN_SECONDS = 1.0;

static const char *prog = "ptedges";

static void die(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* Parse a whole string as an unsigned number in C syntax (base 0). */
static int parse_u64(const char *s, uint64_t *value)
{
	char *rest;

	if (!s || !*s || *s == '-')
		return 0;

	errno = 0;
	*value = strtoull(s, &rest, 0);
	return !errno && !*rest;
}

/* "F/M[/S]" or "none" into @config's cpu and errata (unknown cpu: warn). */
static void parse_cpu(struct pt_config *config, const char *arg)
{
	unsigned int part[3] = { 0, 0, 0 };
	int count, status;

	memset(&config->cpu, 0, sizeof(config->cpu));
	memset(&config->errata, 0, sizeof(config->errata));
	if (strcmp(arg, "none") == 0)
		return;

	count = sscanf(arg, "%u/%u/%u", &part[0], &part[1], &part[2]);
	if (count < 2 || part[0] > USHRT_MAX || part[1] > UCHAR_MAX ||
	    part[2] > UCHAR_MAX)
		die("--cpu: expected F/M[/S] or none, got '%s'", arg);

	config->cpu.vendor = pcv_intel;
	config->cpu.family = (uint16_t) part[0];
	config->cpu.model = (uint8_t) part[1];
	config->cpu.stepping = (uint8_t) part[2];

	status = pt_cpu_errata(&config->errata, &config->cpu);
	if (status < 0)
		fprintf(stderr, "%s: warning: no errata for cpu %s: %s\n", prog,
			arg, pt_errstr(pt_errcode(status)));
}

/* Read a whole file into a new buffer. */
static uint8_t *load_file(const char *path, size_t *loaded)
{
	FILE *file;
	long fsize;
	uint8_t *buffer;

	file = fopen(path, "rb");
	if (!file)
		die("cannot open %s: %s", path, strerror(errno));
	if (fseek(file, 0, SEEK_END) != 0 || (fsize = ftell(file)) < 0)
		die("cannot determine the size of %s", path);
	buffer = malloc(fsize ? (size_t) fsize : 1);
	if (!buffer)
		die("out of memory loading %s", path);
	if (fseek(file, 0, SEEK_SET) != 0 ||
	    (fsize && fread(buffer, (size_t) fsize, 1, file) != 1))
		die("cannot read %s", path);
	fclose(file);
	*loaded = (size_t) fsize;
	return buffer;
}

/* Add FILE[:FROM[-TO]]:ADDR to @image through @iscache. */
static void add_raw_image(struct pt_image_section_cache *iscache,
			  struct pt_image *image, const char *spec)
{
	char *file, *sep, *colon, *dash;
	uint64_t base, offset = 0, size = 0, from, to;
	int isid, status;

	file = strdup(spec);
	if (!file)
		die("out of memory");
	sep = strrchr(file, ':');
	if (!sep || !parse_u64(sep + 1, &base))
		die("--raw: cannot parse the load address in '%s'", spec);
	*sep = '\0';

	/* An optional :FROM[-TO] range, as in ptxed. */
	colon = strrchr(file, ':');
	if (colon) {
		dash = strchr(colon + 1, '-');
		if (dash) {
			*dash = '\0';
			if (parse_u64(colon + 1, &from) &&
			    parse_u64(dash + 1, &to) && to > from) {
				offset = from;
				size = to - from;
				*colon = '\0';
			} else {
				*dash = '-';
			}
		} else if (parse_u64(colon + 1, &from)) {
			offset = from;
			*colon = '\0';
		}
	}
	if (!*file)
		die("--raw: missing file name in '%s'", spec);

	isid = pt_iscache_add_file(iscache, file, offset,
				   size ? size : UINT64_MAX, base);
	if (isid < 0)
		die("--raw: cannot load %s at 0x%" PRIx64 ": %s", file, base,
		    pt_errstr(pt_errcode(isid)));
	status = pt_image_add_cached(image, iscache, isid, NULL);
	if (status < 0)
		die("--raw: cannot map %s at 0x%" PRIx64 ": %s", file, base,
		    pt_errstr(pt_errcode(status)));
	free(file);
}

/* --- the edge map (ptscope's src/flow/edges/edge-map.ts) ----------------- */

struct edge_map {
	uint32_t mask;
	uint32_t *counts;
	uint32_t *touched;
	uint32_t used;
	uint8_t *bitmap;
	uint64_t edges;
};

static uint32_t block_loc(uint64_t addr, uint32_t mask)
{
	uint32_t lo = (uint32_t) addr, hi = (uint32_t) (addr >> 32);
	uint32_t h = lo ^ (hi * 0x9e3779b1u);

	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h & mask;
}

static void map_hit(struct edge_map *map, uint32_t id)
{
	if (map->counts[id]++ == 0)
		map->touched[map->used++] = id;
	map->edges += 1;
}

static uint8_t afl_bucket(uint32_t count)
{
	if (count <= 3)
		return count == 3 ? 4 : (uint8_t) count;
	if (count < 8)
		return 8;
	if (count < 16)
		return 16;
	if (count < 32)
		return 32;
	if (count < 128)
		return 64;
	return 128;
}

/* Bucket the counts into the bitmap and clear them for the next run. */
static void map_finish(struct edge_map *map)
{
	uint32_t i;

	memset(map->bitmap, 0, (size_t) map->mask + 1);
	for (i = 0; i < map->used; ++i) {
		uint32_t id = map->touched[i];

		map->bitmap[id] = afl_bucket(map->counts[id]);
		map->counts[id] = 0;
	}
}

static uint64_t bitmap_hash(const struct edge_map *map)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint64_t i;

	for (i = 0; i <= map->mask; ++i) {
		h ^= map->bitmap[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* --- one decode ------------------------------------------------------------ */

struct edge_state {
	uint32_t prev;
	int boundary;
};

static void restart(struct edge_state *st)
{
	st->prev = 0;
	st->boundary = 1;
}

/* Decode the whole trace with libipt's instruction decoder into @map
 * (counts only; map_finish makes the bitmap). After an error: on at the
 * next PSB, as ptxed does.
 */
static void run_edges(const struct pt_config *config, struct pt_image *image,
		      struct edge_map *map, uint64_t *distinct)
{
	struct pt_insn_decoder *decoder;
	struct pt_insn insn;
	struct pt_event event;
	struct edge_state st;
	uint64_t last_sync = 0, new_sync;
	int status;

	map->used = 0;
	map->edges = 0;
	restart(&st);
	memset(&insn, 0, sizeof(insn));

	decoder = pt_insn_alloc_decoder(config);
	if (!decoder)
		die("cannot allocate an instruction decoder");
	if (pt_insn_set_image(decoder, image) < 0)
		die("cannot set the image");

	for (;;) {
		status = pt_insn_sync_forward(decoder);
		if (status < 0) {
			if (status == -pte_eos)
				break;
			restart(&st);
			if (pt_insn_get_offset(decoder, &new_sync) < 0 ||
			    new_sync <= last_sync)
				break;
			last_sync = new_sync;
			continue;
		}

		for (;;) {
			while (status >= 0 && (status & pts_event_pending)) {
				status = pt_insn_event(decoder, &event,
						       sizeof(event));
				if (status < 0)
					break;
				switch (event.type) {
				case ptev_async_branch:
					st.boundary = 1;
					break;
				case ptev_enabled:
					if (!event.status_update)
						st.boundary = 1;
					break;
				case ptev_overflow:
					restart(&st);
					break;
				default:
					break;
				}
			}
			if (status < 0)
				break;
			if (status & pts_eos) {
				status = -pte_eos;
				break;
			}

			/* An instruction that fails after it was decoded (no
			 * trace for it, the trace ends) is still given with
			 * its class and ran, as ptxed prints it; one that
			 * could not be decoded has class ptic_error, and so
			 * has none at all (an error before decoding leaves
			 * @insn as it was: mark it).
			 */
			insn.iclass = ptic_error;
			status = pt_insn_next(decoder, &insn, sizeof(insn));
			if (status < 0 && insn.iclass == ptic_error)
				break;

			if (st.boundary) {
				uint32_t cur = block_loc(insn.ip, map->mask);

				map_hit(map, (st.prev >> 1) ^ cur);
				st.prev = cur;
				st.boundary = 0;
			}
			/* Where a failing instruction went is unknown. */
			if (status < 0)
				break;
			if (insn.iclass != ptic_other &&
			    insn.iclass != ptic_ptwrite)
				st.boundary = 1;
		}

		if (status == -pte_eos)
			break;
		restart(&st);
	}

	pt_insn_free_decoder(decoder);
	*distinct = map->used;
	map_finish(map);
}

/* --- main ------------------------------------------------------------------ */

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr, "usage: %s edges|bench [--cpu F/M[/S]|none] "
		"[--raw FILE[:FROM[-TO]]:ADDR]... [--map-size N] [--runs N] "
		"TRACE.pt\n", prog);
	exit(EXIT_USAGE);
}

int main(int argc, char **argv)
{
	struct pt_image_section_cache *iscache;
	struct pt_image *image;
	struct pt_config config;
	struct edge_map map;
	const char *trace = NULL;
	uint64_t map_size = 1u << 16, runs = 1000, value, distinct = 0, done;
	uint8_t *buffer;
	size_t size;
	int bench, idx;
	double start, elapsed, per_run;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "edges") == 0)
		bench = 0;
	else if (strcmp(argv[1], "bench") == 0)
		bench = 1;
	else
		usage();

	pt_config_init(&config);
	iscache = pt_iscache_alloc(NULL);
	image = pt_image_alloc(NULL);
	if (!iscache || !image)
		die("out of memory");

	for (idx = 2; idx < argc; ++idx) {
		const char *arg = argv[idx];
		const char *val = idx + 1 < argc ? argv[idx + 1] : NULL;

		if (strcmp(arg, "--cpu") == 0 && val) {
			parse_cpu(&config, val);
			idx += 1;
		} else if (strcmp(arg, "--raw") == 0 && val) {
			add_raw_image(iscache, image, val);
			idx += 1;
		} else if (strcmp(arg, "--map-size") == 0 && val) {
			if (!parse_u64(val, &value) || value < 256 ||
			    value > (1u << 24) || (value & (value - 1)))
				die("--map-size: a power of two in [256, 2^24]");
			map_size = value;
			idx += 1;
		} else if (strcmp(arg, "--runs") == 0 && val) {
			if (!parse_u64(val, &value) || !value)
				die("--runs: a positive number");
			runs = value;
			idx += 1;
		} else if (arg[0] == '-') {
			die("unknown option or missing argument: '%s'", arg);
		} else {
			if (trace)
				die("more than one trace file");
			trace = arg;
		}
	}
	if (!trace)
		die("missing trace file");

	buffer = load_file(trace, &size);
	config.begin = buffer;
	config.end = buffer + size;

	map.mask = (uint32_t) (map_size - 1);
	map.counts = calloc(map_size, sizeof(*map.counts));
	map.touched = calloc(map_size, sizeof(*map.touched));
	map.bitmap = calloc(map_size, 1);
	if (!map.counts || !map.touched || !map.bitmap)
		die("out of memory");

	if (!bench) {
		run_edges(&config, image, &map, &distinct);
	} else {
		done = 0;
		start = now_seconds();
		do {
			run_edges(&config, image, &map, &distinct);
			done += 1;
			elapsed = now_seconds() - start;
		} while (elapsed < BENCH_MIN_SECONDS || done < runs);
		per_run = elapsed / (double) done;
		printf("runs %" PRIu64 "\n", done);
		printf("seconds %.9f\n", per_run);
		printf("traces_per_second %.3f\n", 1.0 / per_run);
		printf("mbps %.3f\n", (double) size / per_run / 1e6);
	}
	printf("edges %" PRIu64 "\n", map.edges);
	printf("distinct %" PRIu64 "\n", distinct);
	printf("bitmap_fnv1a64 %016" PRIx64 "\n", bitmap_hash(&map));

	free(map.counts);
	free(map.touched);
	free(map.bitmap);
	pt_image_free(image);
	pt_iscache_free(iscache);
	free(buffer);
	return 0;
}
