import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { conformanceDir, matchesLibvirtError, runConformance } from './conformance.ts';
import { KNOWN_INVALID } from './known-invalid.ts';
import { losslessProblems } from './lossless.ts';

const root = conformanceDir();
const hasVirsh = spawnSync('virsh', ['--version'], { timeout: 10_000 }).status === 0;

describe.skipIf(!existsSync(root))('libvirt XML conformance corpus', () => {
  const results = runConformance(root);

  it('covers every corpus folder', () => {
    expect(results.map((r) => r.folder)).toEqual([
      'libvirt/domain-xml',
      'libvirt/network',
      'libvirt/storage',
      'virt-manager/domain',
      'virt-manager/network',
      'virt-manager/pool',
      'virt-manager/volume',
    ]);
    for (const r of results) expect(r.total, r.folder).toBeGreaterThan(0);
  });

  for (const r of results) {
    describe(`${r.folder} (${r.manifest})`, () => {
      it.each(r.cases.map((c) => [c.file, c] as const))('%s', (_file, c) => {
        expect(c.ok, c.detail).toBe(true);
      });
    });
  }

  it('expects exactly the known-invalid documents to be refused outside libvirt/domain-xml', () => {
    const refused = results
      .filter((r) => r.folder !== 'libvirt/domain-xml')
      .flatMap((r) => r.cases.filter((c) => c.expected === 'reject').map((c) => c.file));
    expect(refused.sort()).toEqual(Object.keys(KNOWN_INVALID).sort());
  });
});

describe('conformance checkers', () => {
  it('recognises what libvirt error messages name', () => {
    expect(matchesLibvirtError("/domain/vcpu/@cpuset: Failed to parse bitmap 'aaa'", "invalid argument: Failed to parse bitmap 'aaa'\n")).toBe(true);
    expect(matchesLibvirtError("Failed to parse bitmap 'bbb'", "invalid argument: Failed to parse bitmap 'aaa'")).toBe(false);
    expect(matchesLibvirtError('XML error: Memory size must be specified via <memory> or in the <numa> configuration', 'XML error: Memory size must be specified via <memory> or in the <numa> configuration')).toBe(true);
    expect(matchesLibvirtError('something else', 'XML error: Memory size must be specified via <memory> or in the <numa> configuration')).toBe(false);
    expect(matchesLibvirtError('XML document is not well-formed: Unclosed tag', "ABS_SRCDIR/x.xml:2: Couldn't find end of Start Tag dom line 1")).toBe(true);
  });

  it('finds what a formatted document dropped or changed', () => {
    expect(losslessProblems("<a x='1'><b/><c>t</c></a>", '<a><c>u</c></a>')).toEqual(['/a/@x: attribute dropped', '/a/b[1]: element dropped', "/a/c[1]: text 't' became 'u'"]);
    expect(losslessProblems("<a><memory unit='GiB'>1</memory><m u='0x10'/><n v='AB:CD'/></a>", "<a><memory unit='KiB'>1048576</memory><m u='16'/><n v='ab:cd'/><extra/></a>")).toEqual([]);
    expect(losslessProblems("<a><memory unit='GiB'>1</memory></a>", "<a><memory unit='KiB'>1048575</memory></a>")).toHaveLength(1);
    expect(losslessProblems('<a/>', '<b/>')).toEqual(['root <a> became <b>']);
  });
});

/** The known-invalid list claims libvirt refuses those documents; libvirt's own test driver can say so. */
describe.skipIf(!hasVirsh || !existsSync(root))('known-invalid documents against libvirt itself', () => {
  it.each(Object.entries(KNOWN_INVALID))('virsh refuses %s', (rel) => {
    const r = spawnSync('virsh', ['-q', '-c', 'test:///default', 'define', path.join(root, rel)], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stdout).not.toBe(0);
    expect(r.stderr).toMatch(/error: /);
  });
});
