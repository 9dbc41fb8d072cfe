/*
 * ptoracle: a small differential-testing oracle for ptscope, built on the
 * system's libipt (Debian libipt-dev 2.0.5).
 *
 * It prints libipt's view of a trace in a tool-neutral, line-oriented text
 * format so that tests can compare ptscope's decoders with libipt line by
 * line, and it measures libipt's throughput for benchmarks.
 *
 * It builds against Debian's libipt 2.0.5 (build.sh) and against the
 * libipt the vectors come from (test/oracle/build-libipt.sh), so that the
 * two versions can be told apart where they disagree.
 *
 * Modes (all output on stdout, one item per line):
 *   packets TRACE.pt [--cpu F/M[/S]|none]
 *   insn [--cpu F/M[/S]|none] [--raw SPEC]... [--image-from OFFSET [--raw SPEC]...]...
 *        [--pt] TRACE.pt [--ips|--hash] [--syncs]
 *   blk  [--cpu F/M[/S]|none] [--raw SPEC]... [--image-from OFFSET [--raw SPEC]...]...
 *        [--pt] TRACE.pt [--syncs]
 *   bench-packets [--cpu ...] TRACE.pt
 *   bench-insn [--cpu ...] [--raw SPEC]... TRACE.pt
 *   bench-blk [--cpu ...] [--raw SPEC]... TRACE.pt
 *
 * The flow modes run the decoder the way ptxed does without
 * --resync-on-error: drain events, decode, and after an error report it
 * and sync forward to the next PSB. They print each instruction's IP (insn)
 * or each block as "block IP END-IP NINSN" (blk), errors as
 * "error OFFSET IP NAME", and with --syncs each sync point as "sync OFFSET".
 *
 * A raw image SPEC is either ptxed's syntax, FILE[:FROM[-TO]]:ADDR, or the
 * equivalent FILE[:FROM[-TO]]@ADDR. FROM-TO is a byte range of the file (TO
 * exclusive, as in ptxed); without it the whole file (from FROM) is mapped.
 * Numbers use C syntax (0x.. hex, 0.. octal, else decimal), as in ptxed.
 *
 * --image-from OFFSET starts another image, made of the --raw options after
 * it, for the trace from the PSB at OFFSET on (code rewritten while it ran:
 * ptscope bundles' image epochs). The flow modes switch to it where libipt
 * tells the position before the next instruction: after a sync and at a
 * PSB+'s exec-mode status update (see follow_images).
 *
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

/* Exit status for bad arguments or unreadable files. */
enum { EXIT_USAGE = 2 };

/* Benchmarks repeat whole passes until at least this much time has passed. */
static const double BENCH_MIN_SECONDS = 1.0;

static const char *prog = "ptoracle";

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

/* libipt's error names without the pte_ prefix, indexed by pt_error_code.
 * ptscope's errorName() uses the same spelling.
 */
static const char *const error_names[] = {
	"ok", "internal", "invalid", "nosync", "bad_opc", "bad_packet",
	"bad_context", "eos", "bad_query", "nomem", "bad_config", "noip",
	"ip_suppressed", "nomap", "bad_insn", "no_time", "no_cbr", "bad_image",
	"bad_lock", "not_supported", "retstack_empty", "bad_retcomp",
	"bad_status_update", "no_enable", "event_ignored", "overflow",
	"bad_file", "bad_cpu",
};

static const char *error_name(int status)
{
	unsigned int code = (unsigned int) pt_errcode(status);

	if (code < sizeof(error_names) / sizeof(error_names[0]))
		return error_names[code];
	return "unknown";
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* --- argument helpers ---------------------------------------------------- */

/* Parse a whole string as an unsigned number in C syntax (base 0), like
 * ptxed does. Returns 1 on success, 0 if @s is not entirely a number.
 */
static int parse_u64(const char *s, uint64_t *value)
{
	char *rest;

	if (!s || !*s || *s == '-')
		return 0;

	errno = 0;
	*value = strtoull(s, &rest, 0);
	return !errno && !*rest;
}

/* Parse "F/M[/S]" (C-syntax numbers) or "none" into @config's cpu and
 * errata. An unknown cpu is not fatal: like ptdump we warn and decode
 * without errata.
 */
static void parse_cpu(struct pt_config *config, const char *arg)
{
	uint64_t part[3] = { 0, 0, 0 };
	const uint64_t limit[3] = { USHRT_MAX, UCHAR_MAX, UCHAR_MAX };
	char buf[64], *field, *save = NULL;
	int count = 0, status;

	memset(&config->cpu, 0, sizeof(config->cpu));
	memset(&config->errata, 0, sizeof(config->errata));
	if (strcmp(arg, "none") == 0)
		return;

	if (strlen(arg) >= sizeof(buf) || strstr(arg, "//") || arg[0] == '/' ||
	    arg[strlen(arg) - 1] == '/')
		die("--cpu: expected F/M[/S] or none, got '%s'", arg);

	strcpy(buf, arg);
	for (field = strtok_r(buf, "/", &save); field;
	     field = strtok_r(NULL, "/", &save)) {
		if (count == 3 || !parse_u64(field, &part[count]) ||
		    part[count] > limit[count])
			die("--cpu: expected F/M[/S] or none, got '%s'", arg);
		count += 1;
	}
	if (count < 2)
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

/* Read @size bytes (0: to the end) at @offset of @path into a new buffer. */
static uint8_t *load_file(const char *path, uint64_t offset, uint64_t size,
			  size_t *loaded)
{
	FILE *file;
	long fsize;
	uint8_t *buffer;
	size_t want;

	file = fopen(path, "rb");
	if (!file)
		die("cannot open %s: %s", path, strerror(errno));

	if (fseek(file, 0, SEEK_END) != 0 || (fsize = ftell(file)) < 0)
		die("cannot determine the size of %s", path);

	if (offset > (uint64_t) fsize)
		die("offset 0x%" PRIx64 " is beyond the end of %s", offset,
		    path);
	if (!size)
		size = (uint64_t) fsize - offset;
	if (size > (uint64_t) fsize - offset)
		die("range 0x%" PRIx64 "-0x%" PRIx64 " is beyond the end of %s",
		    offset, offset + size, path);

	want = (size_t) size;
	buffer = malloc(want ? want : 1);
	if (!buffer)
		die("out of memory loading %s", path);

	if (fseek(file, (long) offset, SEEK_SET) != 0 ||
	    (want && fread(buffer, want, 1, file) != 1))
		die("cannot read %s", path);

	fclose(file);
	*loaded = want;
	return buffer;
}

/* Split an optional ":FROM[-TO]" suffix off @file (modified in place).
 * Like ptxed, a suffix that is not a number range is taken to be part of
 * the file name. Sets @size to 0 when no end is given.
 */
static void split_file_range(char *file, const char *spec, uint64_t *offset,
			     uint64_t *size)
{
	char *colon, *dash;
	uint64_t from, to;

	*offset = 0;
	*size = 0;

	colon = strrchr(file, ':');
	if (!colon)
		return;

	dash = strchr(colon + 1, '-');
	if (!dash) {
		if (!parse_u64(colon + 1, &from))
			return;
		*offset = from;
		*colon = '\0';
		return;
	}

	*dash = '\0';
	if (!parse_u64(colon + 1, &from) || !parse_u64(dash + 1, &to)) {
		*dash = '-';
		return;
	}
	if (to <= from)
		die("bad file range in '%s': end must be above start", spec);

	*offset = from;
	*size = to - from;
	*colon = '\0';
}

/* Add one raw image SPEC (see the header comment) to @image. */
static void add_raw_image(struct pt_image_section_cache *iscache,
			  struct pt_image *image, const char *spec)
{
	char *file, *sep;
	uint64_t base, offset, size;
	int isid, status;

	file = strdup(spec);
	if (!file)
		die("out of memory");

	/* The load address follows the last '@' or, ptxed-style, the last
	 * ':'.
	 */
	sep = strrchr(file, '@');
	if (!sep)
		sep = strrchr(file, ':');
	if (!sep || !parse_u64(sep + 1, &base))
		die("--raw: cannot parse the load address in '%s'", spec);
	*sep = '\0';

	split_file_range(file, spec, &offset, &size);
	if (!*file)
		die("--raw: missing file name in '%s'", spec);

	/* libipt maps the rest of the file when the size is UINT64_MAX. */
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

#define MAX_IMAGE_EPOCHS 4096

/* Everything the modes need from the command line. */
struct options {
	struct pt_config config;
	const char *trace;
	struct pt_image_section_cache *iscache;
	struct pt_image *image;
	/* Image epochs: images[k] decodes the trace from the PSB at from[k]. */
	struct pt_image *images[MAX_IMAGE_EPOCHS];
	uint64_t from[MAX_IMAGE_EPOCHS];
	int nimages;
	int nraw;
	int hash;
	int syncs;
	/* Buffer holding the trace (owned). */
	uint8_t *buffer;
};

/* Parse the arguments after the mode name. Image options are accepted only
 * when @with_image, the output selectors only when @with_output.
 */
static void parse_args(struct options *opt, int argc, char **argv,
		       int with_image, int with_output)
{
	size_t size;
	int idx;

	memset(opt, 0, sizeof(*opt));
	pt_config_init(&opt->config);

	if (with_image) {
		opt->iscache = pt_iscache_alloc(NULL);
		opt->image = pt_image_alloc(NULL);
		if (!opt->iscache || !opt->image)
			die("out of memory");
		opt->images[0] = opt->image;
		opt->from[0] = 0;
		opt->nimages = 1;
	}

	for (idx = 0; idx < argc; ++idx) {
		const char *arg = argv[idx];
		const char *value = idx + 1 < argc ? argv[idx + 1] : NULL;

		if (strcmp(arg, "--cpu") == 0) {
			if (!value)
				die("--cpu: missing argument");
			parse_cpu(&opt->config, value);
			idx += 1;
		} else if (with_image && strcmp(arg, "--raw") == 0) {
			if (!value)
				die("--raw: missing argument");
			add_raw_image(opt->iscache,
				      opt->images[opt->nimages - 1], value);
			opt->nraw += 1;
			idx += 1;
		} else if (with_image && strcmp(arg, "--image-from") == 0) {
			uint64_t from;

			if (!value || parse_u64(value, &from) < 0)
				die("--image-from: expected a trace offset");
			if (from <= opt->from[opt->nimages - 1])
				die("--image-from: offsets must increase");
			if (opt->nimages == MAX_IMAGE_EPOCHS)
				die("--image-from: more than %d images",
				    MAX_IMAGE_EPOCHS);
			opt->images[opt->nimages] = pt_image_alloc(NULL);
			if (!opt->images[opt->nimages])
				die("out of memory");
			opt->from[opt->nimages] = from;
			opt->nimages += 1;
			idx += 1;
		} else if (with_image && strcmp(arg, "--pt") == 0) {
			/* ptxed spells the trace argument this way. */
			if (!value)
				die("--pt: missing argument");
			if (opt->trace)
				die("more than one trace file");
			opt->trace = value;
			idx += 1;
		} else if (with_output && strcmp(arg, "--hash") == 0) {
			opt->hash = 1;
		} else if (with_output && strcmp(arg, "--ips") == 0) {
			opt->hash = 0;
		} else if (with_output && strcmp(arg, "--syncs") == 0) {
			opt->syncs = 1;
		} else if (arg[0] == '-') {
			die("unknown option '%s'", arg);
		} else {
			if (opt->trace)
				die("more than one trace file ('%s', '%s')",
				    opt->trace, arg);
			opt->trace = arg;
		}
	}

	if (!opt->trace)
		die("missing trace file");

	opt->buffer = load_file(opt->trace, 0, 0, &size);
	opt->config.begin = opt->buffer;
	opt->config.end = opt->buffer + size;
}

static void free_options(struct options *opt)
{
	int k;

	for (k = 1; k < opt->nimages; ++k)
		pt_image_free(opt->images[k]);
	pt_image_free(opt->image);
	pt_iscache_free(opt->iscache);
	free(opt->buffer);
}

/* --- packets ------------------------------------------------------------- */

/* Print one packet in the neutral format: "<offset> <name> <fields...>",
 * all numbers lower-case hex without 0x.
 */
static void print_packet(uint64_t offset, const struct pt_packet *pkt)
{
	printf("%" PRIx64 " ", offset);

	switch (pkt->type) {
	case ppt_pad:
		puts("pad");
		return;
	case ppt_psb:
		puts("psb");
		return;
	case ppt_psbend:
		puts("psbend");
		return;
	case ppt_ovf:
		puts("ovf");
		return;
	case ppt_stop:
		puts("stop");
		return;
	case ppt_tnt_8:
	case ppt_tnt_64:
		printf("%s %x %" PRIx64 "\n",
		       pkt->type == ppt_tnt_8 ? "tnt.8" : "tnt.64",
		       pkt->payload.tnt.bit_size, pkt->payload.tnt.payload);
		return;
	case ppt_tip:
	case ppt_tip_pge:
	case ppt_tip_pgd:
	case ppt_fup: {
		const char *name = pkt->type == ppt_tip ? "tip" :
			pkt->type == ppt_tip_pge ? "tip.pge" :
			pkt->type == ppt_tip_pgd ? "tip.pgd" : "fup";

		printf("%s %x %" PRIx64 "\n", name,
		       (unsigned int) pkt->payload.ip.ipc,
		       pkt->payload.ip.ip);
		return;
	}
	case ppt_mode:
		if (pkt->payload.mode.leaf == pt_mol_tsx)
			printf("mode.tsx %x %x\n",
			       pkt->payload.mode.bits.tsx.intx,
			       pkt->payload.mode.bits.tsx.abrt);
		else
			printf("mode.exec %x %x\n",
			       pkt->payload.mode.bits.exec.csl,
			       pkt->payload.mode.bits.exec.csd);
		return;
	case ppt_pip:
		printf("pip %" PRIx64 " %x\n", pkt->payload.pip.cr3,
		       pkt->payload.pip.nr);
		return;
	case ppt_vmcs:
		printf("vmcs %" PRIx64 "\n", pkt->payload.vmcs.base);
		return;
	case ppt_cbr:
		printf("cbr %x\n", pkt->payload.cbr.ratio);
		return;
	case ppt_tsc:
		printf("tsc %" PRIx64 "\n", pkt->payload.tsc.tsc);
		return;
	case ppt_tma:
		printf("tma %x %x\n", pkt->payload.tma.ctc,
		       pkt->payload.tma.fc);
		return;
	case ppt_mtc:
		printf("mtc %x\n", pkt->payload.mtc.ctc);
		return;
	case ppt_cyc:
		printf("cyc %" PRIx64 "\n", pkt->payload.cyc.value);
		return;
	case ppt_mnt:
		printf("mnt %" PRIx64 "\n", pkt->payload.mnt.payload);
		return;
	case ppt_exstop:
		printf("exstop %x\n", pkt->payload.exstop.ip);
		return;
	case ppt_mwait:
		printf("mwait %" PRIx32 " %" PRIx32 "\n",
		       pkt->payload.mwait.hints, pkt->payload.mwait.ext);
		return;
	case ppt_pwre:
		printf("pwre %x %x %x\n", pkt->payload.pwre.state,
		       pkt->payload.pwre.sub_state, pkt->payload.pwre.hw);
		return;
	case ppt_pwrx:
		printf("pwrx %x %x %x %x %x\n", pkt->payload.pwrx.last,
		       pkt->payload.pwrx.deepest,
		       pkt->payload.pwrx.interrupt, pkt->payload.pwrx.store,
		       pkt->payload.pwrx.autonomous);
		return;
	case ppt_ptw:
		printf("ptw %x %x %" PRIx64 "\n", pkt->payload.ptw.plc,
		       pkt->payload.ptw.ip, pkt->payload.ptw.payload);
		return;
	case ppt_unknown:
	case ppt_invalid:
		break;
	}

	/* Without a decode callback libipt never returns these. */
	printf("unknown %x\n", (unsigned int) pkt->type);
}

/* Decode every packet from the first PSB on. After a decode error, report
 * it and resynchronize at the next PSB; stop at the end of the trace.
 * With @print, write the neutral dump; return the number of packets.
 */
static uint64_t run_packets(const struct pt_config *config, int print)
{
	struct pt_packet_decoder *decoder;
	struct pt_packet pkt;
	uint64_t offset = 0, count = 0;
	int status;

	decoder = pt_pkt_alloc_decoder(config);
	if (!decoder)
		die("cannot allocate a packet decoder");

	for (;;) {
		status = pt_pkt_sync_forward(decoder);
		if (status < 0)
			break;

		for (;;) {
			if (pt_pkt_get_offset(decoder, &offset) < 0)
				offset = 0;

			status = pt_pkt_next(decoder, &pkt, sizeof(pkt));
			if (status < 0)
				break;

			count += 1;
			if (print)
				print_packet(offset, &pkt);
		}

		if (status == -pte_eos)
			break;

		if (print)
			printf("error %" PRIx64 " %s\n", offset,
			       error_name(status));
	}

	/* Where decoding stopped; 0 if the decoder never synchronized. */
	if (pt_pkt_get_offset(decoder, &offset) < 0)
		offset = 0;
	if (print)
		printf("end %" PRIx64 "\n", offset);

	pt_pkt_free_decoder(decoder);
	return count;
}

static int mode_packets(int argc, char **argv)
{
	struct options opt;

	parse_args(&opt, argc, argv, 0, 0);
	run_packets(&opt.config, 1);
	free_options(&opt);
	return 0;
}

static int mode_bench_packets(int argc, char **argv)
{
	struct options opt;
	uint64_t packets = 0, bytes;
	double start, elapsed, per_pass;
	int passes = 0;

	parse_args(&opt, argc, argv, 0, 0);
	bytes = (uint64_t) (opt.config.end - opt.config.begin);

	start = now_seconds();
	do {
		packets = run_packets(&opt.config, 0);
		passes += 1;
		elapsed = now_seconds() - start;
	} while (elapsed < BENCH_MIN_SECONDS);

	per_pass = elapsed / passes;
	printf("bytes %" PRIu64 "\n", bytes);
	printf("packets %" PRIu64 "\n", packets);
	printf("seconds %.9f\n", per_pass);
	printf("mbps %.3f\n", (double) bytes / per_pass / 1e6);

	free_options(&opt);
	return 0;
}

/* --- instruction flow --------------------------------------------------- */

/* libipt 2.1 renamed the class of an instruction that was not decoded. */
#if (LIBIPT_VERSION >= 0x201)
#  define PTIC_NOT_DECODED ptic_unknown
#else
#  define PTIC_NOT_DECODED ptic_error
#endif

/* What to do with each decoded instruction. */
enum insn_sink {
	/* Print each IP (or block) and each error. */
	sink_print,
	/* Only count and hash the IPs. */
	sink_hash,
	/* Only count (benchmark). */
	sink_count
};

/* 64-bit FNV-1a parameters. */
static const uint64_t FNV_OFFSET_BASIS = 0xcbf29ce484222325ull;
static const uint64_t FNV_PRIME = 0x100000001b3ull;

struct insn_result {
	uint64_t count;
	uint64_t hash;
	uint64_t blocks;
};

static void take_insn(struct insn_result *res, enum insn_sink sink,
		      uint64_t ip)
{
	int byte;

	res->count += 1;
	switch (sink) {
	case sink_print:
		printf("%" PRIx64 "\n", ip);
		break;
	case sink_hash:
		/* The IP as 8 little-endian bytes. */
		for (byte = 0; byte < 8; ++byte) {
			res->hash ^= (ip >> (8 * byte)) & 0xff;
			res->hash *= FNV_PRIME;
		}
		break;
	case sink_count:
		break;
	}
}

static void take_block(struct insn_result *res, enum insn_sink sink,
		       const struct pt_block *block)
{
	res->count += block->ninsn;
	res->blocks += 1;
	if (sink == sink_print && block->ninsn)
		printf("block %" PRIx64 " %" PRIx64 " %u\n", block->ip,
		       block->end_ip, (unsigned int) block->ninsn);
}

/* The flow decoders' calls, for the one loop below. */
struct flow_decoder {
	struct pt_insn_decoder *insn;
	struct pt_block_decoder *blk;
};

static int flow_sync_forward(struct flow_decoder *d)
{
	return d->insn ? pt_insn_sync_forward(d->insn) :
		pt_blk_sync_forward(d->blk);
}

static int flow_offset(struct flow_decoder *d, uint64_t *offset)
{
	return d->insn ? pt_insn_get_offset(d->insn, offset) :
		pt_blk_get_offset(d->blk, offset);
}

static int flow_sync_offset(struct flow_decoder *d, uint64_t *offset)
{
	return d->insn ? pt_insn_get_sync_offset(d->insn, offset) :
		pt_blk_get_sync_offset(d->blk, offset);
}

static int flow_event(struct flow_decoder *d, struct pt_event *ev)
{
	return d->insn ? pt_insn_event(d->insn, ev, sizeof(*ev)) :
		pt_blk_event(d->blk, ev, sizeof(*ev));
}

/* With image epochs: use the image for the last PSB the decoder passed.
 * libipt 2.0.5 moves its sync offset only when it syncs, so the position
 * is the decoder's offset, which is past the PSB+ whose status update is
 * being delivered (and, at a sync, past the PSB synced to). Only those
 * two: 2.0.5 delivers a PSB+'s exec-mode status update with tracing
 * disabled too, and by the time it delivers a tracing enable it may have
 * read ahead through the run's TIP.PGD and the next PSB+.
 */
static void follow_images(struct flow_decoder *d, const struct options *opt,
			  int *current)
{
	uint64_t offset;
	int k;

	if (opt->nimages < 2 || flow_offset(d, &offset) < 0)
		return;
	for (k = opt->nimages - 1; k > 0 && opt->from[k] > offset; --k)
		;
	if (k == *current)
		return;
	*current = k;
	if ((d->insn ? pt_insn_set_image(d->insn, opt->images[k]) :
	     pt_blk_set_image(d->blk, opt->images[k])) < 0)
		die("cannot set the image");
}

static void report_flow_error(struct flow_decoder *d, enum insn_sink sink,
			      uint64_t ip, int status)
{
	uint64_t offset;

	if (sink != sink_print)
		return;

	if (flow_offset(d, &offset) < 0)
		printf("error ? %" PRIx64 " %s\n", ip, error_name(status));
	else
		printf("error %" PRIx64 " %" PRIx64 " %s\n", offset, ip,
		       error_name(status));
}

/* Run libipt's instruction (@blocks zero) or block flow decoder over the
 * whole trace with ptxed's error policy: report an error with the trace
 * offset and the IP the decoder was at, then sync forward to the next PSB.
 * Events are drained and dropped. An instruction decoded before an error
 * still counts, as do the instructions of a block that ends in one.
 */
static struct insn_result run_flow(const struct options *opt,
				   enum insn_sink sink, int blocks)
{
	struct insn_result res = { 0, FNV_OFFSET_BASIS, 0 };
	struct flow_decoder d = { NULL, NULL };
	struct pt_insn insn;
	struct pt_block block;
	struct pt_event event;
	uint64_t last_sync = 0, new_sync, sync;
	uint64_t ip;
	int status, current = 0;

	memset(&insn, 0, sizeof(insn));
	memset(&block, 0, sizeof(block));

	if (blocks) {
		d.blk = pt_blk_alloc_decoder(&opt->config);
		if (!d.blk)
			die("cannot allocate a block decoder");
		if (pt_blk_set_image(d.blk, opt->image) < 0)
			die("cannot set the image");
	} else {
		d.insn = pt_insn_alloc_decoder(&opt->config);
		if (!d.insn)
			die("cannot allocate an instruction decoder");
		if (pt_insn_set_image(d.insn, opt->image) < 0)
			die("cannot set the image");
	}

	for (;;) {
		/* The IP reported with a sync error. */
		insn.ip = 0;
		block.ip = 0;
		block.ninsn = 0;

		status = flow_sync_forward(&d);
		if (status < 0) {
			if (status == -pte_eos)
				break;

			report_flow_error(&d, sink, 0, status);

			/* Give up if syncing makes no progress. */
			if (flow_offset(&d, &new_sync) < 0 ||
			    new_sync <= last_sync)
				break;
			last_sync = new_sync;
			continue;
		}

		if (opt->syncs && sink == sink_print &&
		    flow_sync_offset(&d, &sync) >= 0)
			printf("sync %" PRIx64 "\n", sync);
		follow_images(&d, opt, &current);

		for (;;) {
			while (status >= 0 && (status & pts_event_pending)) {
				status = flow_event(&d, &event);
				if (status >= 0 &&
				    event.type == ptev_exec_mode &&
				    event.status_update)
					follow_images(&d, opt, &current);
			}
			if (status < 0)
				break;

			if (status & pts_eos) {
				status = -pte_eos;
				break;
			}

			if (blocks) {
				status = pt_blk_next(d.blk, &block,
						     sizeof(block));
				take_block(&res, sink, &block);
				if (status < 0)
					break;
				continue;
			}

			status = pt_insn_next(d.insn, &insn, sizeof(insn));
			if (status < 0) {
				/* An event that was not indicated up front. */
				if (status == -pte_event_ignored) {
					status = pts_event_pending;
					continue;
				}
				if (insn.iclass != PTIC_NOT_DECODED)
					take_insn(&res, sink, insn.ip);
				break;
			}

			take_insn(&res, sink, insn.ip);
		}

		if (status == -pte_eos)
			break;

		if (blocks)
			ip = block.ninsn ? block.end_ip : block.ip;
		else
			ip = insn.ip;
		report_flow_error(&d, sink, ip, status);
	}

	pt_insn_free_decoder(d.insn);
	pt_blk_free_decoder(d.blk);
	return res;
}

static int mode_flow(int argc, char **argv, int blocks)
{
	struct options opt;
	struct insn_result res;

	parse_args(&opt, argc, argv, 1, 1);
	res = run_flow(&opt, opt.hash ? sink_hash : sink_print, blocks);
	if (opt.hash) {
		printf("insn %" PRIu64 "\n", res.count);
		printf("fnv1a64 %016" PRIx64 "\n", res.hash);
	}
	free_options(&opt);
	return 0;
}

static int mode_bench_flow(int argc, char **argv, int blocks)
{
	struct options opt;
	struct insn_result res;
	double start, elapsed, per_pass;
	int passes = 0;

	parse_args(&opt, argc, argv, 1, 0);

	start = now_seconds();
	do {
		res = run_flow(&opt, sink_count, blocks);
		passes += 1;
		elapsed = now_seconds() - start;
	} while (elapsed < BENCH_MIN_SECONDS);

	per_pass = elapsed / passes;
	printf("insn %" PRIu64 "\n", res.count);
	printf("blocks %" PRIu64 "\n", res.blocks);
	printf("seconds %.9f\n", per_pass);
	printf("ips %.0f\n", (double) res.count / per_pass);

	free_options(&opt);
	return 0;
}

/* --- main ---------------------------------------------------------------- */

/* --- backward synchronization ------------------------------------------ */

/* Sync backward from the end, again and again, with the query, instruction
 * and block decoders: print the sync offsets each reaches (and, for the
 * flow decoders, the offset and status after the events there), then the
 * error that ended it.
 */
static int mode_sync_backward(int argc, char **argv)
{
	struct pt_query_decoder *qry;
	struct pt_insn_decoder *insn;
	struct pt_block_decoder *blk;
	struct options opt;
	struct pt_event ev;
	uint64_t offset, pos, ip, last;
	int status;

	parse_args(&opt, argc, argv, 1, 1);

	qry = pt_qry_alloc_decoder(&opt.config);
	if (!qry)
		die("cannot allocate a query decoder");
	printf("qry");
	for (;;) {
		status = pt_qry_sync_backward(qry, &ip);
		if (status < 0)
			break;
		if (pt_qry_get_sync_offset(qry, &offset) < 0)
			die("no sync offset");
		printf(" %" PRIx64, offset);
	}
	printf(" %s\n", pt_errstr(pt_errcode(status)));
	pt_qry_free_decoder(qry);

	insn = pt_insn_alloc_decoder(&opt.config);
	if (!insn || pt_insn_set_image(insn, opt.image) < 0)
		die("cannot allocate an instruction decoder");
	printf("insn");
	last = UINT64_MAX;
	for (;;) {
		status = pt_insn_sync_backward(insn);
		if (status < 0)
			break;
		if (pt_insn_get_sync_offset(insn, &offset) < 0)
			die("no sync offset");
		/* Stop where a backward sync does not go back. */
		if (offset >= last) {
			printf(" again %" PRIx64 "\n", offset);
			break;
		}
		last = offset;
		/* The events at the sync point; decoding further would move
		 * the position that the next backward sync starts from.
		 */
		while (status >= 0 && (status & pts_event_pending))
			status = pt_insn_event(insn, &ev, sizeof(ev));
		if (pt_insn_get_offset(insn, &pos) < 0)
			die("no offset");
		printf(" %" PRIx64 ":%" PRIx64 ":%d", offset, pos, status);
	}
	if (status < 0)
		printf(" %s\n", pt_errstr(pt_errcode(status)));
	pt_insn_free_decoder(insn);

	blk = pt_blk_alloc_decoder(&opt.config);
	if (!blk || pt_blk_set_image(blk, opt.image) < 0)
		die("cannot allocate a block decoder");
	printf("blk");
	last = UINT64_MAX;
	for (;;) {
		status = pt_blk_sync_backward(blk);
		if (status < 0)
			break;
		if (pt_blk_get_sync_offset(blk, &offset) < 0)
			die("no sync offset");
		/* Stop where a backward sync does not go back. */
		if (offset >= last) {
			printf(" again %" PRIx64 "\n", offset);
			break;
		}
		last = offset;
		while (status >= 0 && (status & pts_event_pending))
			status = pt_blk_event(blk, &ev, sizeof(ev));
		if (pt_blk_get_offset(blk, &pos) < 0)
			die("no offset");
		printf(" %" PRIx64 ":%" PRIx64 ":%d", offset, pos, status);
	}
	if (status < 0)
		printf(" %s\n", pt_errstr(pt_errcode(status)));
	pt_blk_free_decoder(blk);

	free_options(&opt);
	return 0;
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr, "usage: %s packets|insn|blk|sync-backward|bench-packets|bench-insn|"
		"bench-blk [--cpu F/M[/S]|none] [--raw FILE[:FROM[-TO]]:ADDR]... "
		"TRACE.pt [--ips|--hash] [--syncs]\n", prog);
	exit(EXIT_USAGE);
}

int main(int argc, char **argv)
{
	/* Large output buffer: an instruction dump can be millions of lines. */
	static char out[1 << 20];
	const char *mode;

	setvbuf(stdout, out, _IOFBF, sizeof(out));

	if (argc < 2)
		usage();

	mode = argv[1];
	if (strcmp(mode, "packets") == 0)
		return mode_packets(argc - 2, argv + 2);
	if (strcmp(mode, "insn") == 0)
		return mode_flow(argc - 2, argv + 2, 0);
	if (strcmp(mode, "blk") == 0)
		return mode_flow(argc - 2, argv + 2, 1);
	if (strcmp(mode, "sync-backward") == 0)
		return mode_sync_backward(argc - 2, argv + 2);
	if (strcmp(mode, "bench-packets") == 0)
		return mode_bench_packets(argc - 2, argv + 2);
	if (strcmp(mode, "bench-insn") == 0)
		return mode_bench_flow(argc - 2, argv + 2, 0);
	if (strcmp(mode, "bench-blk") == 0)
		return mode_bench_flow(argc - 2, argv + 2, 1);

	usage();
}
