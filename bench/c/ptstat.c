/*
 * The C side of the whole-process benchmarks: one pass of libipt's packet,
 * instruction or block decoder over a trace, the loops of `ptscope dump
 * --stat` and `ptscope flow --quiet --stat` (ptdump's and ptxed's loops
 * without printing), then the count. Timed from outside as a process, like
 * the ptscope commands it is compared with.
 *
 *   ptstat packets TRACE.pt
 *   ptstat insn|blk [--cpu F/M] [--raw FILE:ADDR]... TRACE.pt
 *
 * Built by bench/run.ts: gcc -O2 bench/c/ptstat.c -lipt.
 */
#include <intel-pt.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
	fprintf(stderr, "ptstat: %s\n", what);
	exit(2);
}

/* The whole file in memory, as ptdump and ptxed load it. */
static uint8_t *load(const char *path, size_t *size)
{
	FILE *file = fopen(path, "rb");
	long n;
	uint8_t *buf;

	if (!file || fseek(file, 0, SEEK_END) != 0 || (n = ftell(file)) < 0)
		die(strerror(errno));
	buf = malloc(n ? (size_t) n : 1);
	if (!buf)
		die("out of memory");
	rewind(file);
	if (n && fread(buf, (size_t) n, 1, file) != 1)
		die("cannot read the trace");
	fclose(file);
	*size = (size_t) n;
	return buf;
}

static uint64_t count_packets(const struct pt_config *config)
{
	struct pt_packet_decoder *dec = pt_pkt_alloc_decoder(config);
	struct pt_packet pkt;
	uint64_t packets = 0;
	int status;

	if (!dec)
		die("cannot allocate the packet decoder");
	for (;;) {
		status = pt_pkt_sync_forward(dec);
		if (status < 0)
			break;
		for (;;) {
			status = pt_pkt_next(dec, &pkt, sizeof(pkt));
			if (status < 0)
				break;
			packets++;
		}
		if (status == -pte_eos)
			break;
	}
	pt_pkt_free_decoder(dec);
	return packets;
}

static uint64_t count_insn(const struct pt_config *config, struct pt_image *image)
{
	struct pt_insn_decoder *dec = pt_insn_alloc_decoder(config);
	struct pt_insn insn;
	struct pt_event ev;
	uint64_t n = 0;
	int status;

	if (!dec || pt_insn_set_image(dec, image) < 0)
		die("cannot set up the instruction decoder");
	for (;;) {
		status = pt_insn_sync_forward(dec);
		if (status < 0) {
			if (status == -pte_eos)
				break;
			continue;
		}
		for (;;) {
			while (status >= 0 && (status & pts_event_pending))
				status = pt_insn_event(dec, &ev, sizeof(ev));
			if (status < 0 || (status & pts_eos))
				break;
			status = pt_insn_next(dec, &insn, sizeof(insn));
			if (status < 0) {
				if (insn.iclass != ptic_error)
					n++;
				break;
			}
			n++;
		}
		if (status == -pte_eos || (status >= 0 && (status & pts_eos)))
			break;
	}
	pt_insn_free_decoder(dec);
	return n;
}

static uint64_t count_blk(const struct pt_config *config, struct pt_image *image, uint64_t *blocks)
{
	struct pt_block_decoder *dec = pt_blk_alloc_decoder(config);
	struct pt_block block;
	struct pt_event ev;
	uint64_t n = 0;
	int status;

	if (!dec || pt_blk_set_image(dec, image) < 0)
		die("cannot set up the block decoder");
	for (;;) {
		status = pt_blk_sync_forward(dec);
		if (status < 0) {
			if (status == -pte_eos)
				break;
			continue;
		}
		for (;;) {
			while (status >= 0 && (status & pts_event_pending))
				status = pt_blk_event(dec, &ev, sizeof(ev));
			if (status < 0 || (status & pts_eos))
				break;
			block.ninsn = 0;
			status = pt_blk_next(dec, &block, sizeof(block));
			n += block.ninsn;
			*blocks += 1;
			if (status < 0)
				break;
		}
		if (status == -pte_eos || (status >= 0 && (status & pts_eos)))
			break;
	}
	pt_blk_free_decoder(dec);
	return n;
}

int main(int argc, char **argv)
{
	struct pt_config config;
	struct pt_image *image;
	const char *mode, *trace = NULL;
	size_t size;
	uint8_t *buf;
	int i;

	if (argc < 3)
		die("usage: ptstat packets|insn|blk [--cpu F/M] [--raw FILE:ADDR]... TRACE");
	mode = argv[1];
	memset(&config, 0, sizeof(config));
	config.size = sizeof(config);
	image = pt_image_alloc(NULL);
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--cpu") == 0 && i + 1 < argc) {
			unsigned family, model;

			if (sscanf(argv[++i], "%u/%u", &family, &model) != 2)
				die("bad --cpu");
			config.cpu.vendor = pcv_intel;
			config.cpu.family = (uint16_t) family;
			config.cpu.model = (uint8_t) model;
		} else if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc) {
			char *spec = argv[++i];
			char *colon = strrchr(spec, ':');

			if (!colon)
				die("bad --raw");
			*colon = '\0';
			if (pt_image_add_file(image, spec, 0, UINT64_MAX, NULL, strtoull(colon + 1, NULL, 0)) < 0)
				die("cannot map --raw");
		} else {
			trace = argv[i];
		}
	}
	if (!trace)
		die("no trace");
	if (config.cpu.vendor && pt_cpu_errata(&config.errata, &config.cpu) < 0)
		die("unknown cpu");
	buf = load(trace, &size);
	config.begin = buf;
	config.end = buf + size;

	if (strcmp(mode, "packets") == 0) {
		printf("packets %" PRIu64 "\n", count_packets(&config));
	} else if (strcmp(mode, "insn") == 0) {
		printf("insn %" PRIu64 "\n", count_insn(&config, image));
	} else if (strcmp(mode, "blk") == 0) {
		uint64_t blocks = 0;
		uint64_t n = count_blk(&config, image, &blocks);

		printf("insn %" PRIu64 "\nblocks %" PRIu64 "\n", n, blocks);
	} else {
		die("unknown mode");
	}
	pt_image_free(image);
	free(buf);
	return 0;
}
