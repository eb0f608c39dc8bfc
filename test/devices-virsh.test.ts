import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hasVirsh, virtplane as runCli } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);

const xmlFor = (name: string) => `<domain type='test'><name>${name}</name><memory unit='KiB'>1000000</memory><os><type>hvm</type></os>
<devices><disk type='file' device='disk'><source file='/img/${name}.img'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='cdrom'><source file='/iso/a.iso'/><target dev='hdc' bus='ide'/><readonly/></disk></devices></domain>`;

/**
 * virsh's own checks on the disk verbs, before it asks libvirt: its option rules, its look-up of a
 * disk by target or path (detach-disk, change-media), its file reading. libvirt's test driver
 * implements none of the device calls ("this function is not supported by the connection driver"),
 * so what it does past these checks is compared with the qemu driver's rules in devices.test.ts and
 * exercised on our test driver below.
 */
const SCRIPTS: string[][] = [
  ['detach-disk vdz', 'detach-disk vdz --config', 'detach-disk /img/none.img --live'],
  ['start', 'detach-disk vdz', 'detach-disk hdd --current'],
  ['change-media vda --eject', 'change-media hdz /iso/b.iso --insert', 'change-media /img/x.img --update'],
  ['change-media hdc --eject --insert', 'change-media hdc --insert --update', 'change-media hdc --eject --update'],
  ['attach-disk /img/b.img vdb --mode bogus', 'attach-disk /img/b.img vdb --current --live', 'attach-disk /img/b.img vdb --current --config', 'attach-disk /img/b.img vdb --persistent --current'],
  ['detach-disk vda --current --live', 'attach-device /nonexistent/dev.xml', 'update-device /nonexistent/dev.xml'],
];

describe('disk verbs on the test driver', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack();
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
  }, 60_000);
  afterAll(async () => stack?.stop());

  const cli = (args: string[]) => runCli(env, ...args);
  const define = async (name: string) => {
    const file = join(stack.dataDir, `${name}.xml`);
    await writeFile(file, xmlFor(name));
    expect((await cli(['define', file])).code).toBe(0);
    return file;
  };
  const targets = async (name: string, inactive = false) =>
    [...(await cli(['dumpxml', name, ...(inactive ? ['--inactive'] : [])])).stdout.matchAll(/<target dev='(\w+)'/g)].map((m) => m[1]);

  it.skipIf(!hasVirsh).each(SCRIPTS.map((s, i) => [i, s] as const))('virsh side by side, script %i: %j', { timeout: 120_000 }, async (i, script) => {
    const name = `dv${i}`;
    const file = await define(name);
    const withName = (c: string) => (c === 'start' ? `start ${name}` : c.replace(/^(\S+)/, `$1 ${name}`));
    const theirs = await run('virsh', ['-c', 'test:///default', [`define ${file}`, ...script.map(withName)].join(' ; ')]).then(
      (r) => r.stderr,
      (e: { stderr: string }) => e.stderr,
    );
    let ours = '';
    for (const c of script.map(withName)) ours += (await cli(c.split(' '))).stderr;
    const errors = (t: string) => t.split('\n').filter(Boolean).map((l) => l.replace(/ \[[a-z-]+\]$/, ''));
    expect(errors(ours)).toEqual(errors(theirs));
  });

  it('attach-disk and detach-disk: live on the running guest, --config on the definition, --persistent on both', { timeout: 120_000 }, async () => {
    await define('hot1');
    // The flagless call is the running guest's, as virsh's virDomainAttachDevice.
    const off = await cli(['attach-disk', 'hot1', '/img/b.img', 'vdb']);
    expect(off.stderr.trim().split('\n')).toEqual(['error: Failed to attach disk', "error: Requested operation is not valid: domain is not running [operation-invalid]"]);
    expect((await cli(['attach-disk', 'hot1', '/img/b.img', 'vdb', '--current'])).stdout.trim()).toBe('Disk attached successfully');
    expect(await targets('hot1', true)).toEqual(['vda', 'hdc', 'vdb']);
    const dup = await cli(['attach-disk', 'hot1', '/img/c.img', 'vdb', '--config']);
    expect(dup.stderr.trim().split('\n')).toEqual(['error: Failed to attach disk', 'error: Requested operation is not valid: target vdb already exists [operation-invalid]']);

    expect((await cli(['start', 'hot1'])).code).toBe(0);
    expect((await cli(['attach-disk', 'hot1', '/img/c.img', 'vdc', '--targetbus', 'virtio', '--subdriver', 'qcow2'])).stdout.trim()).toBe('Disk attached successfully');
    expect(await targets('hot1')).toEqual(['vda', 'hdc', 'vdb', 'vdc']);
    expect(await targets('hot1', true)).toEqual(['vda', 'hdc', 'vdb']);
    expect((await cli(['dumpxml', 'hot1'])).stdout).toContain("<driver type='qcow2'/>");
    expect((await cli(['domblklist', 'hot1'])).stdout).toMatch(/^ vdc +\/img\/c\.img$/m);
    const live = await cli(['attach-disk', 'hot1', '/img/d.img', 'vdc']);
    expect(live.stderr.trim().split('\n')).toEqual(['error: Failed to attach disk', 'error: operation failed: target vdc already exists [operation-failed]']);

    expect((await cli(['attach-disk', 'hot1', '/img/e.img', 'vdd', '--persistent', '--mode', 'readonly'])).code).toBe(0);
    expect(await targets('hot1')).toEqual(['vda', 'hdc', 'vdb', 'vdc', 'vdd']);
    expect(await targets('hot1', true)).toEqual(['vda', 'hdc', 'vdb', 'vdd']);

    // By source path, as virsh finds it.
    expect((await cli(['detach-disk', 'hot1', '/img/c.img'])).stdout.trim()).toBe('Disk detached successfully');
    expect((await cli(['detach-disk', 'hot1', 'vdd', '--config'])).code).toBe(0);
    expect(await targets('hot1')).toEqual(['vda', 'hdc', 'vdb', 'vdd']);
    expect(await targets('hot1', true)).toEqual(['vda', 'hdc', 'vdb']);
    // A live-only disk is gone with the guest: the next boot has the persistent definition.
    expect((await cli(['destroy', 'hot1'])).code).toBe(0);
    expect(await targets('hot1')).toEqual(['vda', 'hdc', 'vdb']);
  });

  it('attach-device and detach-device take an <interface> as attach-interface and detach-interface do', { timeout: 60_000 }, async () => {
    await define('hot3');
    const nic = join(stack.dataDir, 'nic.xml');
    await writeFile(nic, "<interface type='network'><mac address='52:54:00:aa:bb:01'/><source network='default'/><model type='virtio'/></interface>");
    expect((await cli(['attach-device', 'hot3', nic, '--config'])).stdout.trim()).toBe('Device attached successfully');
    expect((await cli(['dumpxml', 'hot3', '--inactive'])).stdout).toContain("<mac address='52:54:00:aa:bb:01'/>");
    const twice = await cli(['attach-device', 'hot3', nic, '--config']);
    expect(twice.stderr).toContain("already has an interface with MAC address 52:54:00:aa:bb:01");
    expect((await cli(['detach-device', 'hot3', nic, '--config'])).stdout.trim()).toBe('Device detached successfully');
    expect((await cli(['dumpxml', 'hot3', '--inactive'])).stdout).not.toContain('52:54:00:aa:bb:01');
  });

  it('attach-device, detach-device, update-device and change-media; hostile or oversized XML changes nothing', { timeout: 120_000 }, async () => {
    await define('hot2');
    expect((await cli(['start', 'hot2'])).code).toBe(0);
    const dev = join(stack.dataDir, 'vdb.xml');
    await writeFile(dev, "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/img/x.img'/><target dev='vdb' bus='virtio'/></disk>");
    expect((await cli(['attach-device', 'hot2', dev])).stdout.trim()).toBe('Device attached successfully');
    expect(await targets('hot2')).toEqual(['vda', 'hdc', 'vdb']);
    expect((await cli(['detach-device', 'hot2', dev])).stdout.trim()).toBe('Device detached successfully');
    expect(await targets('hot2')).toEqual(['vda', 'hdc']);

    expect((await cli(['change-media', 'hot2', 'hdc', '--eject'])).stdout.trim()).toBe('Successfully ejected media.');
    expect((await cli(['dumpxml', 'hot2'])).stdout).not.toContain('/iso/a.iso');
    const empty = await cli(['change-media', 'hot2', 'hdc', '--eject']);
    expect(empty.stderr.trim()).toBe("error: The disk device 'hdc' doesn't have media [invalid-arg]");
    expect((await cli(['change-media', 'hot2', 'hdc', '/iso/b.iso', '--insert'])).stdout.trim()).toBe('Successfully inserted media.');
    expect((await cli(['dumpxml', 'hot2'])).stdout).toContain("<source file='/iso/b.iso'/>");
    // Only the running guest changed (change-media passes AFFECT_CURRENT).
    expect((await cli(['dumpxml', 'hot2', '--inactive'])).stdout).toContain("<source file='/iso/a.iso'/>");
    const cd = join(stack.dataDir, 'hdc.xml');
    await writeFile(cd, "<disk type='file' device='cdrom'><source file='/iso/c.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>");
    expect((await cli(['update-device', 'hot2', cd, '--persistent'])).stdout.trim()).toBe('Device updated successfully');
    expect((await cli(['dumpxml', 'hot2'])).stdout).toContain("<source file='/iso/c.iso'/>");
    expect((await cli(['dumpxml', 'hot2', '--inactive'])).stdout).toContain("<source file='/iso/c.iso'/>");

    const before = (await cli(['dumpxml', 'hot2'])).stdout;
    const hostile: Array<[string, RegExp]> = [
      ['<!DOCTYPE d [<!ENTITY x "y">]><disk>&x;</disk>', /DOCTYPE/],
      ['<disk type="file"><source file="/a"/><target dev="vdz"', /not well-formed/],
      ['<hostdev mode="subsystem"/>', /only <disk> and <interface>/],
      [`<disk type="file"><source file="${'a'.repeat(300_000)}"/><target dev="vde"/></disk>`, /larger than the 256 KiB limit/],
      ['<disk type="file"><source file="/a"/><target dev="zz0"/></disk>', /Unknown disk name 'zz0'/],
    ];
    for (const [xml, why] of hostile) {
      await writeFile(dev, xml);
      const r = await cli(['attach-device', 'hot2', dev]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: Failed to attach device from /);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toMatch(/\[(xml-error|invalid-arg)\]$/m);
    }
    expect((await cli(['dumpxml', 'hot2'])).stdout).toBe(before);
  });
});
