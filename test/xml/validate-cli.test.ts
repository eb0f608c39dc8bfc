import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateFiles } from '../../cli/validate.ts';
import { parseDomainXml } from '../../contracts/xml/index.ts';

let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'virtplane-validate-'));
  await writeFile(
    file('guest.xml'),
    "<domain type='kvm'><name>web1</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid><memory unit='MiB'>512</memory><os><type>hvm</type></os><devices><interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/></interface></devices></domain>",
  );
  await writeFile(file('net.xml'), "<network><name>lab</name><uuid>81ff0d90-c91e-6742-64da-4a736edb9a8e</uuid><forward mode='bridge'/><bridge name='br0'/></network>");
  await writeFile(file('pool.xml'), "<pool type='dir'><name>images</name><uuid>70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2</uuid><target><path>/var/lib/images</path></target></pool>");
  await writeFile(file('vol.xml'), "<volume><name>disk.qcow2</name><capacity unit='G'>10</capacity><target><format type='qcow2'/></target></volume>");
  await writeFile(file('broken.xml'), '<domain type="kvm"><name>x</name>');
  await writeFile(file('nomem.xml'), "<domain type='kvm'><name>x</name><os><type>hvm</type></os></domain>");
  await writeFile(file('other.xml'), '<nwfilter/>');
  await mkdir(file('adir'));
  await writeFile(file('huge.xml'), Buffer.alloc(5 * 1024 * 1024, 0x20));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = async (files: string[], format = false) => {
  const lines: string[] = [];
  const code = await validateFiles(files, { format }, (l) => lines.push(l));
  return { code, lines };
};

describe('validateFiles', () => {
  it('names the kind and the object of each valid file and exits 0', async () => {
    const { code, lines } = await run([file('guest.xml'), file('net.xml'), file('pool.xml'), file('vol.xml')]);
    expect(code).toBe(0);
    expect(lines).toEqual([
      `${file('guest.xml')}: ok (domain 'web1')`,
      `${file('net.xml')}: ok (network 'lab')`,
      `${file('pool.xml')}: ok (pool 'images')`,
      `${file('vol.xml')}: ok (volume 'disk.qcow2')`,
    ]);
  });

  it('prints one error line per bad file, keeps going, and exits 1', async () => {
    const { code, lines } = await run([file('broken.xml'), file('guest.xml'), file('nomem.xml'), file('other.xml'), file('missing.xml'), file('adir'), file('huge.xml')]);
    expect(code).toBe(1);
    expect(lines).toHaveLength(7);
    expect(lines[0]).toMatch(new RegExp(`^${file('broken.xml')}: error: XML document is not well-formed: Unclosed tag`));
    expect(lines[1]).toBe(`${file('guest.xml')}: ok (domain 'web1')`);
    expect(lines[2]).toContain('error: XML error: Memory size must be specified');
    expect(lines[3]).toContain('error: unknown root element <nwfilter>');
    expect(lines[4]).toMatch(/missing\.xml: error: cannot read file: ENOENT/);
    expect(lines[5]).toMatch(/adir: error: cannot read file: not a regular file/);
    expect(lines[6]).toMatch(/huge\.xml: error: XML document rejected: larger than 1048576 bytes/);
  });

  it('with format, prints each document as virtplane stores it', async () => {
    const { code, lines } = await run([file('guest.xml')], true);
    expect(code).toBe(0);
    expect(lines[0]).toBe(`${file('guest.xml')}: ok (domain 'web1')`);
    const stored = lines[1]!;
    expect(stored).toContain("<memory unit='KiB'>524288</memory>");
    expect(`${stored}\n`).toBe(parseDomainXml(stored).xml);
  });

  it('exits 2 when no file is given', async () => {
    expect(await run([])).toEqual({ code: 2, lines: ['error: no file to validate'] });
  });
});
