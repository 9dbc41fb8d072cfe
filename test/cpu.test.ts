import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runLibiptHead } from './helpers/libipt-head.js';
import { type Errata, errataFor, hostCpu, noErrata, parseCpu } from '../src/packets/cpu.js';
import { AddrCfg, addrCfgBits, addrFilterCheck, defaultConfig } from '../src/packets/config.js';
import { ErrorCode } from '../src/packets/errors.js';

import { VECTORS } from './helpers/vectors.js';

function intel(family: number, model: number, stepping = 0) {
  return { vendor: 'intel' as const, family, model, stepping };
}

describe('parseCpu', () => {
  it('parses F/M and F/M/S in C number syntax', () => {
    expect(parseCpu('6/92')).toEqual(intel(6, 92));
    expect(parseCpu('6/142/10')).toEqual(intel(6, 142, 10));
    expect(parseCpu('0x6/0x5c')).toEqual(intel(6, 0x5c));
    expect(parseCpu('6/010')).toEqual(intel(6, 8)); // octal, as strtol(.., 0)
    expect(parseCpu('18/1')).toEqual(intel(18, 1));
    expect(parseCpu('6/92/')).toEqual(intel(6, 92, 0)); // libipt accepts an empty stepping
  });

  it('rejects malformed text and out-of-range parts', () => {
    for (const bad of ['', '6', '6/', '/92', '6/92x', '6/92/x', 'a/b', '65536/1', '6/256', '6/1/256', '-1/2']) {
      expect(parseCpu(bad), bad).toBeNull();
    }
  });

  it('none means no cpu; auto reads the host (Intel only)', () => {
    expect(parseCpu('none')?.vendor).toBe('unknown');
    const intelInfo = 'processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 142\nstepping\t: 10\n';
    expect(parseCpu('auto', intelInfo)).toEqual(intel(6, 142, 10));
    const amdInfo = 'processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 33\nstepping\t: 0\n';
    expect(parseCpu('auto', amdInfo)?.vendor).toBe('unknown');
    // The real host parses to something well-formed either way.
    const host = hostCpu();
    expect(['intel', 'unknown']).toContain(host.vendor);
  });
});

describe('errataFor', () => {
  // The whole table, against libipt's pt_cpu_errata at the vectors' commit:
  // every Intel family below 0x20 and every model.
  it('equals libipt\'s errata table for every family and model', () => {
    const expected = runLibiptHead('errata-table', []).stdout.trim().split('\n');
    expect(expected.length).toBeGreaterThan(40);
    const names = Object.keys(noErrata()) as (keyof Errata)[];
    const actual: string[] = [];
    for (let family = 0; family < 0x20; family++) {
      for (let model = 0; model < 0x100; model++) {
        const errata = errataFor(intel(family, model));
        if (typeof errata === 'number') continue;
        actual.push([family, model, ...names.filter((n) => errata[n])].join(' '));
      }
    }
    expect(actual).toEqual(expected);
  });

  it('matches libipt for representative models', () => {
    const skl = errataFor(intel(6, 0x5e)) as Errata;
    expect(skl).toEqual({ ...noErrata(), bdm70: true, skd007: true, skd022: true, skd010: true, skl014: true, skl168: true });
    const bdw = errataFor(intel(6, 0x3d)) as Errata;
    expect(bdw).toEqual({ ...noErrata(), bdm70: true, bdm64: true });
    const apl = errataFor(intel(6, 0x5c)) as Errata;
    expect(apl).toEqual({ ...noErrata(), apl12: true, apl11: true });
    const icx = errataFor(intel(6, 0x6a)) as Errata;
    expect(icx).toEqual({ ...noErrata(), bdm70: true, skl014: true, skd022: true, skz84: true });
    const fam19 = errataFor(intel(19, 1)) as Errata;
    expect(fam19.skz84).toBe(true);
  });

  it('reports unknown cpus like libipt', () => {
    expect(errataFor(intel(0, 0))).toBe(-ErrorCode.BadCpu);
    expect(errataFor(intel(6, 0x01))).toBe(-ErrorCode.BadCpu);
    expect(errataFor(intel(0xf, 0x3d))).toBe(-ErrorCode.BadCpu);
    expect(errataFor({ vendor: 'unknown', family: 6, model: 0x5e, stepping: 0 })).toBe(-ErrorCode.BadCpu);
  });

  // Each NAME@cpu_F_M vector is an erratum test run on a CPU libipt's test
  // annotations list for that erratum: the erratum must be on for it.
  it('enables the erratum each vector folder is named after', () => {
    const names = readdirSync(VECTORS).filter((n) => n.includes('@cpu_'));
    expect(names.length).toBeGreaterThan(200);
    const known = Object.keys(noErrata());
    let checked = 0;
    for (const name of names) {
      const [test, cpuPart] = name.split('@cpu_') as [string, string];
      const [family, model] = cpuPart.split('_').map(Number) as [number, number];
      const errata = errataFor(intel(family, model));
      expect(typeof errata, name).toBe('object');
      const erratum = test.split('-')[0]!;
      if (!known.includes(erratum)) continue;
      expect((errata as Errata)[erratum as keyof Errata], name).toBe(true);
      checked++;
    }
    expect(checked).toBe(names.length);
  });
});

describe('config', () => {
  it('defaults to libipt pt_config_init', () => {
    const c = defaultConfig();
    expect(c.cpu.vendor).toBe('unknown');
    expect(Object.values(c.errata).every((v) => v === false)).toBe(true);
    expect([c.mtcFreq, c.nomFreq, c.cpuid15Eax, c.cpuid15Ebx]).toEqual([0, 0, 0, 0]);
    expect(addrCfgBits(c.addrFilter)).toBe(0);
  });

  it('checks address filters like pt_filter_addr_check', () => {
    const c = defaultConfig();
    // No filter: everything traced.
    expect(addrFilterCheck(c.addrFilter, 0x1000n)).toBe(1);
    c.addrFilter.ranges[0] = { cfg: AddrCfg.Filter, a: 0x1000n, b: 0x1fffn };
    c.addrFilter.ranges[2] = { cfg: AddrCfg.Stop, a: 0x1800n, b: 0x1800n };
    expect(addrCfgBits(c.addrFilter)).toBe(0x201);
    expect(addrFilterCheck(c.addrFilter, 0x1000n)).toBe(1);
    expect(addrFilterCheck(c.addrFilter, 0x1fffn)).toBe(1);
    expect(addrFilterCheck(c.addrFilter, 0x2000n)).toBe(0);
    expect(addrFilterCheck(c.addrFilter, 0x1800n)).toBe(0);
  });
});
