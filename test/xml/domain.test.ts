import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DomainDefinition } from '../../contracts/domain/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import { formatDomainXml, parseDomainXml } from '../../contracts/xml/index.ts';
import { conformanceDir } from '../conformance/conformance.ts';
import { losslessProblems } from '../conformance/lossless.ts';

const corpus = (rel: string) => readFileSync(path.join(conformanceDir(), rel), 'utf8');

const UUID = 'c7a5fdbd-edaf-9455-926a-d65c16db1809';
const fixed = { uuid: () => '11111111-2222-4333-8444-555555555555', randomBytes: (n: number) => new Uint8Array(n).fill(0xab) };

const domain = (body: string, attrs = "type='kvm'") =>
  `<domain ${attrs}><name>g</name><uuid>${UUID}</uuid><memory unit='KiB'>1024</memory><os><type arch='x86_64'>hvm</type></os>${body}</domain>`;

const xmlError = (fn: () => unknown): VirtError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VirtError);
    expect((e as VirtError).code).toBe('xml-error');
    return e as VirtError;
  }
  throw new Error('expected an xml-error');
};

describe('parseDomainXml: model fields', () => {
  it('fills the core model from a libvirt test guest', () => {
    const d = parseDomainXml(corpus('libvirt/domain-xml/disk-network-rbd.xml'));
    expect(d).toMatchObject({ type: 'qemu', name: 'QEMUGuest1', uuid: UUID, memoryKiB: 219136, currentMemoryKiB: 219136, vcpus: 1 });
    expect(d.os).toMatchObject({ type: 'hvm', arch: 'x86_64', machine: 'pc', boot: ['hd'] });
    expect(d.devices.emulator).toBe('/usr/bin/qemu-system-x86_64');
    expect(d.devices.disks).toHaveLength(6);
    expect(d.devices.disks[0]).toMatchObject({
      type: 'network',
      device: 'disk',
      driver: { name: 'qemu', type: 'raw' },
      source: { protocol: 'rbd', name: 'pool/image', hosts: [{ name: 'mon1.example.org', port: 6321 }, { name: 'mon2.example.org', port: 6322 }, { name: 'mon3.example.org', port: 6322 }] },
      target: { dev: 'vda', bus: 'virtio' },
    });
    expect(d.devices.disks[4]!.auth).toEqual({ username: 'myname', secret: { type: 'ceph', usage: 'mycluster_myname' } });
    expect(d.devices.controllers?.map((c) => c.type)).toEqual(['usb', 'ide', 'pci']);
    expect(d.devices.memballoon).toEqual({ model: 'none' });
    expect(DomainDefinition.safeParse(d).success).toBe(true);
  });

  it('models interfaces of every kind libvirt has', () => {
    const d = parseDomainXml(corpus('libvirt/domain-xml/net-vhostuser.xml'));
    expect(d.devices.interfaces.map((n) => [n.type, n.mac, n.model])).toEqual([
      ['vhostuser', '52:54:00:ee:96:6b', 'virtio'],
      ['vhostuser', '52:54:00:ee:96:6c', 'virtio'],
      ['server', '52:54:00:95:db:c0', 'rtl8139'],
    ]);
    expect(d.devices.interfaces[0]!.source).toEqual({ type: 'unix', path: '/tmp/vhost0.sock', mode: 'server' });
    const x = parseDomainXml(
      domain(`<devices><interface type='bridge'><mac address='52:54:00:AA:BB:CC'/><source bridge='br0'/><target dev='vnet7'/><model type='virtio'/>
        <bandwidth><inbound average='1000' peak='5000' burst='1024'/><outbound average='128'/></bandwidth>
        <filterref filter='clean-traffic'><parameter name='IP' value='10.0.0.1'/></filterref>
        <vlan trunk='yes'><tag id='42'/><tag id='47' nativeMode='untagged'/></vlan><mtu size='9000'/><boot order='1'/></interface>
        <interface type='direct'><source dev='eth0' mode='vepa'/></interface></devices>`),
      fixed,
    );
    const [br, direct] = x.devices.interfaces;
    expect(br).toMatchObject({
      type: 'bridge',
      mac: '52:54:00:aa:bb:cc',
      source: { bridge: 'br0' },
      targetDev: 'vnet7',
      model: 'virtio',
      mtu: 9000,
      bootOrder: 1,
      bandwidth: { inbound: { average: 1000, peak: 5000, burst: 1024 }, outbound: { average: 128 } },
      filterref: { filter: 'clean-traffic', parameters: [{ name: 'IP', value: '10.0.0.1' }] },
      vlan: { trunk: true, tags: [{ id: 42 }, { id: 47, nativeMode: 'untagged' }] },
    });
    expect(direct).toMatchObject({ type: 'direct', source: { dev: 'eth0', mode: 'vepa' }, mac: '52:54:00:ab:ab:ab' });
  });

  it('models cpu, numa, clock, features, pm, vcpu, os boot options and the other devices', () => {
    const d = parseDomainXml(corpus('virt-manager/domain/virt-install-many-devices.0.xml'));
    expect(d.cpu).toMatchObject({ mode: 'custom', match: 'strict', model: { name: 'foobar', fallback: 'allow' }, topology: { sockets: 1, dies: 1, cores: 3, threads: 3 } });
    expect(d.cpu?.features?.[0]).toEqual({ policy: 'require', name: 'ibpb' });
    expect(d.cpu?.numa?.cells?.map((c) => c.memoryKiB)).toEqual([1024, 256, 256]);
    expect(d.clock?.offset).toBe('utc');
    expect(d.clock?.timers?.[0]).toEqual({ name: 'pit', tickpolicy: 'catchup', present: true });
    expect(d.features?.apic).toEqual({ eoi: 'on' });
    expect(d.features?.pae).toEqual({});
    expect(d.pm).toEqual({ suspendToMem: true, suspendToDisk: false });
    expect(d.vcpus).toBe(9);
    expect(d.vcpu?.placement).toBe('static');
    expect(d.iothreads).toBe(5);
    expect(d.os).toMatchObject({ firmware: 'efi', machine: 'q35', loader: 'CODE.fd', loaderType: 'pflash', nvramTemplate: 'VARS.fd', cmdline: 'root=/foo' });
    expect(d.os.bootmenu).toEqual({ enable: true, timeout: 5000 });
    expect(d.os.firmwareFeatures).toEqual([{ enabled: true, name: 'secure-boot' }, { enabled: false, name: 'enrolled-keys' }]);
    expect(d.onCrash).toBe('preserve');
    expect(d.metadata).toContain('libosinfo:os');
    expect(d.memoryBacking?.hugepages?.pages).toEqual([{ sizeKiB: 12 * 1024 * 1024, nodeset: '0,1' }, { sizeKiB: 1205079, nodeset: '2' }]);
    const dev = d.devices;
    expect(dev.disks[0]!.iotune).toBeUndefined();
    expect(dev.disks[2]!.iotune).toEqual({ readBytesSec: 1, writeBytesSec: 5, readIopsSec: 2, writeIopsSec: 6 });
    expect(dev.disks[1]!.address).toEqual({ type: 'drive', controller: '0', target: '2', unit: '0' });
    expect(dev.filesystems?.length).toBeGreaterThan(0);
    expect(dev.hostdevs?.[1]).toMatchObject({ mode: 'subsystem', type: 'usb', managed: true, source: { vendor: '0x0781', product: '0x5151' } });
    expect(dev.rngs?.[0]).toEqual({ model: 'virtio', backend: { model: 'random', path: '/dev/random' } });
    expect(dev.watchdogs).toEqual([{ model: 'ib700', action: 'pause' }]);
    expect(dev.memballoon).toEqual({ model: 'virtio', autodeflate: 'on', freePageReporting: 'on', statsPeriod: 10 });
    expect(dev.tpms?.[0]).toMatchObject({ model: 'tpm-crb', backend: { type: 'passthrough', version: '2.0', devicePath: '/dev/tpm0' } });
    expect(dev.sounds?.[2]).toEqual({ model: 'ich9', codecs: ['micro', 'duplex', 'output'] });
    expect(dev.videos?.[1]?.model).toEqual({ type: 'qxl', vram: 3, heads: 4, vgamem: 1, ram: 2, vram64: 65 });
    expect(dev.graphics.find((g) => g.type === 'vnc')).toMatchObject({ port: 5950, keymap: 'ja', listen: '1.2.3.4', passwd: 'foo' });
    expect(dev.channels?.[2]?.target).toEqual({ type: 'virtio', name: 'org.linux-kvm.port1' });
    expect(dev.inputs?.[0]).toEqual({ type: 'keyboard', bus: 'usb' });
  });

  it('follows an explicit backing chain', () => {
    const d = parseDomainXml(
      domain(`<devices><disk type='file' device='disk'><source file='/top.qcow2'/>
        <backingStore type='file' index='1'><format type='qcow2'/><source file='/mid.qcow2'/>
        <backingStore type='block' index='2'><format type='raw'/><source dev='/dev/base'/><backingStore/></backingStore></backingStore>
        <target dev='vda' bus='virtio'/></disk></devices>`),
    );
    expect(d.devices.disks[0]!.backingStore).toEqual({
      type: 'file',
      index: 1,
      format: 'qcow2',
      source: { file: '/mid.qcow2' },
      backingStore: { type: 'block', index: 2, format: 'raw', source: { dev: '/dev/base' }, backingStore: {} },
    });
  });
});

describe('parseDomainXml: units and defaults', () => {
  it.each([
    ["<memory unit='GiB'>4</memory>", 4 * 1024 * 1024],
    ["<memory unit='G'>4</memory>", 4 * 1024 * 1024],
    ["<memory unit='GB'>4</memory>", 3906250],
    ["<memory unit='MiB'>512</memory>", 512 * 1024],
    ["<memory unit='MB'>512</memory>", 500000],
    ["<memory unit='b'>1000</memory>", 1],
    ["<memory unit='bytes'>1025</memory>", 2],
    ["<memory unit='KB'>1024</memory>", 1000],
    ["<memory unit='TiB'>1</memory>", 1024 ** 3],
    ['<memory>2048</memory>', 2048],
  ])('%s is %i KiB and is written back in KiB', (mem, kib) => {
    const d = parseDomainXml(`<domain type='kvm'><name>g</name>${mem}<os><type>hvm</type></os></domain>`, fixed);
    expect(d.memoryKiB).toBe(kib);
    expect(d.currentMemoryKiB).toBe(kib);
    expect(d.xml).toContain(`<memory unit='KiB'>${kib}</memory>`);
    expect(d.xml).toContain(`<currentMemory unit='KiB'>${kib}</currentMemory>`);
  });

  it.each([
    ["<memory unit='xyz'>4</memory>", "/domain/memory: unknown suffix 'xyz'"],
    ["<memory unit='KiB'>-4</memory>", "/domain/memory: invalid value '-4'"],
    ["<memory unit='KiB'>4.5</memory>", "/domain/memory: invalid value '4.5'"],
    ["<memory unit='KiB'>lots</memory>", "/domain/memory: invalid value 'lots'"],
    ["<memory unit='EiB'>16</memory>", '/domain/memory: value too large'],
    ['<memory>99999999999999999999999</memory>', '/domain/memory: value too large'],
  ])('refuses %s', (mem, message) => {
    const e = xmlError(() => parseDomainXml(`<domain type='kvm'><name>g</name>${mem}<os><type>hvm</type></os></domain>`));
    expect(e.message).toContain(message);
  });

  it('refuses invalid numbers and names the attribute', () => {
    expect(xmlError(() => parseDomainXml(domain('<vcpu>two</vcpu>'))).message).toContain('/domain/vcpu');
    expect(xmlError(() => parseDomainXml(domain("<devices><graphics type='vnc' port='59x0'/></devices>"))).message).toContain(
      "/domain/devices/graphics[1]/@port: invalid value '59x0'",
    );
    expect(xmlError(() => parseDomainXml(domain('<on_crash>explode</on_crash>'))).message).toContain('/domain/on_crash');
  });

  it('clamps currentMemory to memory, defaults vcpu, disk bus and boot like libvirt', () => {
    const d = parseDomainXml(
      domain("<currentMemory>4096</currentMemory><devices><disk type='file'><source file='/a'/><target dev='sdb'/></disk><disk device='floppy'><target dev='fda'/></disk></devices>"),
    );
    expect(d.currentMemoryKiB).toBe(1024);
    expect(d.vcpus).toBe(1);
    expect(d.vcpu).toEqual({ placement: 'static' });
    expect(d.devices.disks.map((x) => x.target.bus)).toEqual(['scsi', 'fdc']);
    expect(d.os.boot).toEqual(['hd']);
    expect(d.xml).toContain("<vcpu placement='static'>1</vcpu>");
  });

  it('takes the memory size from the NUMA cells when <memory> is absent', () => {
    const d = parseDomainXml(
      `<domain type='kvm'><name>g</name><vcpu>2</vcpu><os><type>hvm</type></os><cpu><numa><cell id='0' cpus='0' memory='1' unit='GiB'/><cell id='1' cpus='1' memory='512' unit='MiB'/></numa></cpu></domain>`,
    );
    expect(d.memoryKiB).toBe(1024 * 1024 + 512 * 1024);
  });

  it('generates the uuid and MAC addresses through the injected sources', () => {
    const body = "<domain type='kvm'><name>g</name><memory>1024</memory><os><type>hvm</type></os><devices><interface type='network'><source network='default'/></interface><interface type='user'/></devices></domain>";
    let i = 0;
    const d = parseDomainXml(body, { uuid: () => 'AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE', randomBytes: (n) => Uint8Array.from({ length: n }, () => ++i) });
    expect(d.uuid).toBe('aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
    expect(d.devices.interfaces.map((n) => n.mac)).toEqual(['52:54:00:01:02:03', '52:54:00:04:05:06']);
    expect(d.xml).toContain("<mac address='52:54:00:01:02:03'/>");
    const again = parseDomainXml(body, fixed);
    expect(again.uuid).toBe('11111111-2222-4333-8444-555555555555');
    const random = parseDomainXml(body);
    expect(random.devices.interfaces[0]!.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(random.uuid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses a uuid source that does not give a uuid', () => {
    expect(xmlError(() => parseDomainXml(domain('').replace(/<uuid>.*<\/uuid>/, ''), { uuid: () => 'nope' })).message).toContain('UUID source');
  });
});

describe('parseDomainXml: libvirt validation rules', () => {
  it.each([
    ["<domain><name>g</name><memory>1</memory><os><type>hvm</type></os></domain>", 'missing domain type attribute'],
    ["<domain type='kvm'><memory>1</memory><os><type>hvm</type></os></domain>", 'missing <name> element'],
    ["<domain type='kvm'><name>a\nb</name><memory>1</memory><os><type>hvm</type></os></domain>", 'contains a newline'],
    ["<domain type='kvm'><name>g</name><os><type>hvm</type></os></domain>", 'Memory size must be specified'],
    ["<domain type='kvm'><name>g</name><memory>1</memory></domain>", 'an os <type> must be specified'],
    ["<domain type='warp'><name>g</name><memory>1</memory><os><type>hvm</type></os></domain>", "/domain/@type: invalid value 'warp'"],
    ["<domain type='kvm'><name>g</name><uuid>not-a-uuid</uuid><memory>1</memory><os><type>hvm</type></os></domain>", "/domain/uuid: invalid value 'not-a-uuid'"],
  ])('%s', (doc, message) => {
    expect(xmlError(() => parseDomainXml(doc)).message).toContain(message);
  });

  it.each([
    ["<vcpu cpuset='1-x'>2</vcpu>", "Failed to parse bitmap '1-x'"],
    ["<vcpu cpuset='^1'>2</vcpu>", "Invalid value of 'cpuset'"],
    ["<cputune><vcpupin vcpu='0' cpuset='3-1'/></cputune>", "/domain/cputune[1]/vcpupin[1]/@cpuset: Failed to parse bitmap '3-1'"],
    ["<numatune><memory nodeset='a'/></numatune>", "Failed to parse bitmap 'a'"],
    ["<vcpu current='4'>2</vcpu>", 'more than the maximum of 2 vCPUs'],
    ["<os><type arch='z80'>hvm</type></os>", "Unknown architecture 'z80'"],
    ["<vcpu>4</vcpu><cpu><topology sockets='1' cores='2' threads='1'/></cpu>", "CPU topology doesn't match maximum vcpu count"],
    ["<cpu><feature policy='maybe' name='x2apic'/></cpu>", "Invalid CPU feature policy 'maybe'"],
    ["<vcpu>2</vcpu><cpu><numa><cell cpus='0-2' memory='1024'/></numa></cpu>", 'Number of CPUs in <numa> exceeds the <vcpu> count'],
    ["<devices><disk><target dev='vdaxxxxxxxxxxx'/></disk></devices>", "Unknown disk name 'vdaxxxxxxxxxxx' and no address specified"],
    ["<devices><disk><target dev='nvme0'/></disk></devices>", "Unknown disk name 'nvme0'"],
    ["<devices><disk><source file='/a'/></disk></devices>", 'missing target information for disk /domain/devices/disk[1]'],
    ["<devices><disk><target dev='vda' bus='pcie'/></disk></devices>", "unknown disk bus type 'pcie'"],
    ["<devices><disk><target dev='vda'/></disk><disk><target dev='vda'/></disk></devices>", "target 'vda' duplicated"],
    ["<devices><disk type='network'><source name='x'/><target dev='vda'/></disk></devices>", 'missing network source protocol type'],
    ["<devices><disk type='tape'><target dev='vda'/></disk></devices>", "/domain/devices/disk[1]/@type: invalid value 'tape'"],
    ["<devices><interface type='network'/></devices>", "No <source> 'network' attribute specified with <interface type='network'/>"],
    ["<devices><interface type='bridge'><source network='x'/></interface></devices>", "No <source> 'bridge' attribute"],
    ["<devices><interface type='user'><mac address='01:00:5e:00:00:01'/></interface></devices>", 'expected unicast mac address, found multicast'],
    ["<devices><interface type='user'><mac address='52:54:00:zz:00:01'/></interface></devices>", "/domain/devices/interface[1]/mac/@address: invalid value"],
    ["<devices><interface type='teleport'/></devices>", "/domain/devices/interface[1]/@type: invalid value 'teleport'"],
    ["<devices><disk><target dev='vda'/><boot order='1'/></disk><interface type='user'><boot order='1'/></interface></devices>", "boot order '1' used for more than one device"],
    ["<devices><serial type='tcp'><source mode='bind' service='4555'/></serial></devices>", 'Missing source host attribute for char device'],
    ["<devices><channel type='file'><target type='virtio'/></channel></devices>", 'Missing source path attribute for char device'],
    ["<devices><audio type='spice'/></devices>", "Missing required attribute 'id' in element 'audio'"],
    ["<devices><emulator>/usr/bin/qemu-system-aarch64</emulator></devices><os><type arch='x86_64'>hvm</type></os>", "Emulator '/usr/bin/qemu-system-aarch64' does not support arch 'x86_64'"],
  ])('%s', (body, message) => {
    const doc = body.includes('<os>') ? domain(body).replace("<os><type arch='x86_64'>hvm</type></os>", '') : domain(body);
    expect(xmlError(() => parseDomainXml(doc)).message).toContain(message);
  });

  it('refuses per-device boot next to <os><boot>', () => {
    const doc = domain("<devices><disk><target dev='vda'/><boot order='1'/></disk></devices>").replace('</type>', "</type><boot dev='hd'/>");
    expect(xmlError(() => parseDomainXml(doc)).message).toContain('per-device boot elements cannot be used together with os/boot elements');
  });

  it('accepts what libvirt accepts around those rules', () => {
    const d = parseDomainXml(
      domain(
        "<vcpu cpuset='0-3,^2' current='1'>2</vcpu><devices><emulator>/usr/bin/qemu-system-x86_64</emulator><disk><target dev='nvme0n1'/><address type='drive' controller='0' bus='0' target='0' unit='0'/></disk><disk><target dev='vda'/><boot order='2'/></disk></devices>",
      ).replace("arch='x86_64'", "arch='i686'"),
    );
    expect(d.devices.disks.map((x) => x.target.dev)).toEqual(['nvme0n1', 'vda']);
    expect(d.os.boot).toEqual([]);
    expect(d.vcpu).toEqual({ placement: 'static', cpuset: '0-3,^2', current: 1 });
  });
});

describe('lossless formatting', () => {
  const doc = `<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' futureattr='1'>
  <name>g</name><uuid>${UUID}</uuid>
  <memory unit='GiB'>2</memory>
  <os><type>hvm</type><futureos mode='x'/></os>
  <devices>
    <disk type='file' device='disk' newthing='x'>
      <source file='/a.img'><newsrc a='b'/></source>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
    <interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/><coalesce><rx><frames max='7'/></rx></coalesce></interface>
    <newdevice kind='z'><with>text &amp; more</with></newdevice>
  </devices>
  <qemu:commandline><qemu:arg value='-S'/></qemu:commandline>
  <unknown>kept</unknown>
</domain>`;

  it('keeps unknown elements, attributes and namespaced content', () => {
    const d = parseDomainXml(doc);
    expect(losslessProblems(doc, d.xml!)).toEqual([]);
    for (const s of ["futureattr='1'", "<futureos mode='x'/>", "newthing='x'", "<newsrc a='b'/>", "<frames max='7'/>", '<with>text &amp; more</with>', "<qemu:arg value='-S'/>", '<unknown>kept</unknown>', "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"]) {
      expect(d.xml).toContain(s);
    }
  });

  it('formats an edited model back into the stored document, devices keeping their unknown parts', () => {
    const d = parseDomainXml(doc);
    const [vda, sda] = d.devices.disks;
    const edited: DomainDefinition = {
      ...d,
      memoryKiB: 4 * 1024 * 1024,
      currentMemoryKiB: 4 * 1024 * 1024,
      title: 'web & db',
      devices: {
        ...d.devices,
        disks: [sda!, { ...vda!, driver: { name: 'qemu', type: 'qcow2' } }, { type: 'block', device: 'disk', source: { dev: '/dev/sdz' }, target: { dev: 'vdb', bus: 'virtio' }, readonly: false, shareable: false }],
        interfaces: [],
      },
    };
    const out = formatDomainXml(edited);
    const back = parseDomainXml(out);
    expect(back.memoryKiB).toBe(4 * 1024 * 1024);
    expect(back.title).toBe('web & db');
    expect(back.devices.disks.map((x) => x.target.dev)).toEqual(['sda', 'vda', 'vdb']);
    expect(back.devices.disks[1]).toMatchObject({ driver: { name: 'qemu', type: 'qcow2' }, address: { slot: '0x04' } });
    expect(back.devices.disks[2]!.address).toBeUndefined();
    expect(out).toContain("<newsrc a='b'/>");
    expect(out).not.toContain('coalesce');
    expect(out).toContain('<newdevice');
    expect(out.indexOf('<title>')).toBeLessThan(out.indexOf('<memory'));
  });

  it('is a fixed point: parse(format(parse(x))) equals parse(x)', () => {
    const d = parseDomainXml(doc);
    expect(formatDomainXml(d)).toBe(d.xml);
    const again = parseDomainXml(d.xml!);
    expect(again).toEqual(d);
  });

  it('formats a model that never had XML, with the same defaults as a parse', () => {
    const out = formatDomainXml({
      type: 'kvm',
      name: 'fresh',
      uuid: UUID,
      memoryKiB: 2048,
      vcpus: 2,
      devices: { disks: [{ source: { file: '/x.qcow2' }, target: { dev: 'vda' }, driver: { name: 'qemu', type: 'qcow2' } }], interfaces: [{ type: 'network', source: { network: 'default' }, mac: '52:54:00:00:00:09' }] },
    });
    const d = parseDomainXml(out);
    expect(d).toMatchObject({ name: 'fresh', memoryKiB: 2048, currentMemoryKiB: 2048, vcpus: 2, vcpu: { placement: 'static' } });
    expect(d.devices.disks[0]).toMatchObject({ type: 'file', device: 'disk', target: { dev: 'vda', bus: 'virtio' } });
    expect(d.xml).toBe(out);
    expect(out).toBe(`<domain type='kvm'>
  <name>fresh</name>
  <uuid>${UUID}</uuid>
  <memory unit='KiB'>2048</memory>
  <currentMemory unit='KiB'>2048</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type>hvm</type>
    <boot dev='hd'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/x.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:00:00:09'/>
      <source network='default'/>
    </interface>
  </devices>
</domain>
`);
  });

  it('reports an invalid model as an xml-error naming the field', () => {
    const e = xmlError(() => formatDomainXml({ name: 'x', uuid: UUID, memoryKiB: -1, vcpus: 1 } as never));
    expect(e.message).toContain('memoryKiB');
  });

  it('writes metadata edits back as XML', () => {
    const d = parseDomainXml(doc);
    const out = formatDomainXml({ ...d, metadata: "<app:info xmlns:app='urn:x'><app:owner>ops</app:owner></app:info>" });
    expect(out).toContain("<app:owner>ops</app:owner>");
    expect(parseDomainXml(out).metadata).toContain('app:info');
    expect(xmlError(() => formatDomainXml({ ...d, metadata: '<broken>' })).message).toContain('not well-formed');
  });
});
