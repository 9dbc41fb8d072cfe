/*
 * Print libipt's errata table (pt_cpu_errata) for every Intel family below
 * 0x20 and every model: one line "family model erratum..." per CPU that
 * libipt knows. Built against the vectors' libipt by build-libipt.sh; the
 * cpu test compares ptscope's table with it.
 */
#include <intel-pt.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
	for (unsigned int family = 0; family < 0x20; ++family) {
		for (unsigned int model = 0; model < 0x100; ++model) {
			struct pt_cpu cpu;
			struct pt_errata errata;

			memset(&cpu, 0, sizeof(cpu));
			cpu.vendor = pcv_intel;
			cpu.family = (uint16_t) family;
			cpu.model = (uint8_t) model;
			if (pt_cpu_errata(&errata, &cpu) < 0)
				continue;

			printf("%u %u", family, model);
			if (errata.bdm70) printf(" bdm70");
			if (errata.bdm64) printf(" bdm64");
			if (errata.skd007) printf(" skd007");
			if (errata.skd022) printf(" skd022");
			if (errata.skd010) printf(" skd010");
			if (errata.skl014) printf(" skl014");
			if (errata.apl12) printf(" apl12");
			if (errata.apl11) printf(" apl11");
			if (errata.skl168) printf(" skl168");
			if (errata.skz84) printf(" skz84");
			printf("\n");
		}
	}
	return 0;
}
