import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VirtError } from '../../contracts/errors.ts';
import {
  formatNetworkXml,
  formatPoolXml,
  formatVolumeXml,
  parseAnyXml,
  parseNetworkXml,
  parsePoolXml,
  parseVolumeXml,
} from '../../contracts/xml/index.ts';
import { conformanceDir } from '../conformance/conformance.ts';
import { losslessProblems } from '../conformance/lossless.ts';

const corpus = (rel: string) => readFileSync(path.join(conformanceDir(), rel), 'utf8');
const fixed = { uuid: () => '11111111-2222-4333-8444-555555555555', randomBytes: (n: number) => new Uint8Array(n).fill(0x10) };

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

describe('network XML', () => {
  it('parses a NAT network with DHCP hosts', () => {
    const n = parseNetworkXml(corpus('libvirt/network/networkxml2xmlin/nat-network.xml'), fixed);
    expect(n).toMatchObject({
      name: 'default',
      uuid: '81ff0d90-c91e-6742-64da-4a736edb9a9b',
      forward: { mode: 'nat', dev: 'eth1' },
      bridge: { name: 'virbr0', stp: true, delay: 0 },
      mac: '52:54:00:10:10:10',
      ips: [
        {
          family: 'ipv4',
          address: '192.168.122.1',
          prefix: 24,
          dhcp: {
            ranges: [{ start: '192.168.122.2', end: '192.168.122.254' }],
            hosts: [
              { mac: '00:16:3e:77:e2:ed', name: 'a.example.com', ip: '192.168.122.10' },
              { mac: '00:16:3e:3e:a9:1a', name: 'b.example.com', ip: '192.168.122.11' },
            ],
          },
        },
      ],
    });
    // libvirt writes the netmask back as given and the STP defaults of a bridge it manages.
    expect(n.xml).toContain("<ip address='192.168.122.1' netmask='255.255.255.0'>");
    expect(n.xml).toContain("<bridge name='virbr0' stp='on' delay='0'/>");
  });

  it('treats a missing <forward> as isolated and a bare <forward> as nat', () => {
    expect(parseNetworkXml(corpus('libvirt/network/networkxml2xmlin/isolated-network.xml')).forward).toBeUndefined();
    expect(parseNetworkXml("<network><name>n</name><forward/></network>").forward).toEqual({ mode: 'nat' });
  });

  it('derives prefixes from netmasks and classful defaults, and keeps IPv6 hosts, routes and portgroups', () => {
    const n = parseNetworkXml(corpus('virt-manager/network/xmlparse-network-multi-out.0.xml'));
    expect(n.ips.map((i) => [i.family, i.prefix])).toEqual([['ipv4', 23], ['ipv6', 63], ['ipv6', 48], ['ipv4', 24]]);
    expect(n.ips[1]!.dhcp!.hosts[0]).toEqual({ id: '00:03:00:01:52:54:00:60:7d:5d', name: 'paul', ip: 'fd00:beef:10:7::7:2' });
    expect(n.ips[0]!.bootp).toEqual({ file: 'pxeboot.img', server: '1.2.3.4' });
    expect(n.routes).toEqual([{ family: 'ipv4', address: '192.168.8.0', prefix: 24, gateway: '192.168.8.10' }]);
    expect(n.portgroups).toEqual([{ name: 'foo', default: false }, { name: 'sales' }]);
    expect(parseNetworkXml("<network><name>n</name><ip address='10.1.2.3'/></network>").ips[0]!.prefix).toBe(8);
    expect(parseNetworkXml("<network><name>n</name><ip family='ipv6' address='fd00::1'/></network>").ips[0]!.prefix).toBe(64);
  });

  it('parses every forward mode libvirt has', () => {
    for (const mode of ['nat', 'route', 'open', 'bridge', 'private', 'vepa', 'passthrough', 'hostdev']) {
      const n = parseNetworkXml(`<network><name>n</name><forward mode='${mode}' dev='eth0'/><bridge name='br0'/></network>`);
      expect(n.forward?.mode).toBe(mode);
    }
    expect(parseNetworkXml("<network><name>p</name><forward mode='hostdev' managed='yes'><pf dev='eth3'/></forward></network>").forward).toEqual({
      mode: 'hostdev',
      managed: true,
      pfs: ['eth3'],
    });
  });

  it.each([
    ["<network><forward mode='nat'/></network>", 'missing network name'],
    ["<network><name>n</name><forward mode='isolated'/></network>", "/network/forward/@mode: invalid value 'isolated'"],
    ["<network><name>n</name><ip address='10.0.0.1' prefix='24' netmask='255.0.0.0'/></network>", 'cannot have both a prefix and a netmask'],
    ["<network><name>n</name><ip address='10.0.0.1' netmask='255.0.255.0'/></network>", 'a contiguous IPv4 netmask'],
    ["<network><name>n</name><ip address='10.0.0.300'/></network>", "/network/ip[1]/@address: invalid value '10.0.0.300'"],
    ["<network><name>n</name><ip family='ipv6' address='10.0.0.1'/></network>", "family 'ipv6' does not match"],
    ["<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.9' end='10.0.0.2'/></dhcp></ip></network>", 'is reversed'],
    ["<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.1.2' end='10.0.1.9'/></dhcp></ip></network>", 'is not entirely within network 10.0.0.1/24'],
    ["<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><host mac='zz' ip='10.0.0.3'/></dhcp></ip></network>", "/network/ip[1]/dhcp/host[1]/@mac: invalid value 'zz'"],
    ["<network><name>n</name><forward mode='bridge'/><ip address='10.0.0.1' prefix='24'/><bridge name='br0'/></network>", "Unsupported <ip> element in network 'n' with forward mode='bridge'"],
    ["<network><name>n</name><forward mode='bridge'/></network>", "forward mode='bridge' needs a <bridge name=...>"],
    ["<network><name>n</name><bridge name='a-bridge-name-too-long'/></network>", 'bridge.name'],
  ])('refuses %s', (doc, message) => {
    expect(xmlError(() => parseNetworkXml(doc)).message).toContain(message);
  });

  it('formats a model without XML and round-trips it', () => {
    const out = formatNetworkXml({
      name: 'lab',
      uuid: '81ff0d90-c91e-6742-64da-4a736edb9a8e',
      forward: { mode: 'route', dev: 'eth1' },
      bridge: { name: 'virbr9' },
      mac: '52:54:00:0a:0b:0c',
      mtu: 9000,
      ips: [{ address: '10.9.0.1', prefix: 16, dhcp: { ranges: [{ start: '10.9.0.10', end: '10.9.0.99' }], hosts: [] } }],
    });
    expect(out).toContain("<forward mode='route' dev='eth1'/>");
    expect(out).toContain("<bridge name='virbr9' stp='on' delay='0'/>");
    expect(out).toContain("<mtu size='9000'/>");
    expect(out).toContain("<ip address='10.9.0.1' prefix='16'>");
    const n = parseNetworkXml(out);
    expect(n.xml).toBe(out);
    expect(formatNetworkXml(n)).toBe(out);
  });

  it('gives a network whose bridge libvirt manages a MAC address when parsing, never when formatting', () => {
    const model = { name: 'lab', uuid: '81ff0d90-c91e-6742-64da-4a736edb9a8e', forward: { mode: 'nat' as const } };
    expect(formatNetworkXml(model)).not.toContain('<mac');
    expect(parseNetworkXml(formatNetworkXml(model), fixed).mac).toBe('52:54:00:10:10:10');
    expect(parseNetworkXml("<network><name>b</name><forward mode='bridge'/><bridge name='br0'/></network>").mac).toBeUndefined();
  });
});

describe('storage pool XML', () => {
  it('parses dir and netfs pools', () => {
    const dir = parsePoolXml(corpus('libvirt/storage/storagepoolxml2xmlin/pool-dir.xml'));
    expect(dir).toMatchObject({
      type: 'dir',
      name: 'virtimages',
      capacityBytes: 0,
      target: { path: '///var/////lib/libvirt/images//', permissions: { mode: '0700', owner: -1, group: -1, label: 'some_label_t' } },
    });
    const netfs = parsePoolXml(corpus('libvirt/storage/storagepoolxml2xmlin/pool-netfs.xml'));
    expect(netfs.source).toEqual({ hosts: [{ name: 'localhost' }], dir: '/var/lib/libvirt/images', format: 'nfs' });
    expect(netfs.target?.path).toBe('/mnt');
  });

  it('fills the source name and target path of logical pools as libvirt does', () => {
    const p = parsePoolXml(corpus('virt-manager/pool/storage-pool-logical-target-srcname.0.xml'), fixed);
    expect(p.source?.name).toBe('pool-logical-target-srcname');
    expect(p.target?.path).toBe('/dev/pool-logical-target-srcname');
    expect(p.uuid).toBe('11111111-2222-4333-8444-555555555555');
  });

  it('reads sizes in any unit as bytes', () => {
    const p = parsePoolXml("<pool type='dir'><name>p</name><capacity unit='GiB'>2</capacity><allocation>10</allocation><target><path>/p</path></target></pool>");
    expect([p.capacityBytes, p.allocationBytes]).toEqual([2 * 1024 ** 3, 10]);
    expect(p.xml).toContain(`<capacity unit='bytes'>${2 * 1024 ** 3}</capacity>`);
  });

  it.each([
    ["<pool><name>p</name></pool>", 'missing storage pool type attribute'],
    ["<pool type='tape'><name>p</name></pool>", "/pool/@type: invalid value 'tape'"],
    ["<pool type='dir'><target><path>/p</path></target></pool>", 'missing storage pool name'],
    ["<pool type='dir'><name>p</name></pool>", "missing storage pool target path for a 'dir' pool"],
    ["<pool type='netfs'><name>p</name><source><dir path='/x'/></source><target><path>/p</path></target></pool>", 'missing storage pool source host name'],
    ["<pool type='fs'><name>p</name><target><path>/p</path></target></pool>", 'missing storage pool source device path'],
    ["<pool type='rbd'><name>p</name><source><host name='mon'/></source></pool>", 'missing storage pool source name element'],
    ["<pool type='dir'><name>p</name><target><path>/p</path><permissions><mode>999</mode></permissions></target></pool>", "/pool/target/permissions/mode: invalid value '999'"],
    ["<pool type='dir'><name>p</name><capacity unit='parsecs'>1</capacity><target><path>/p</path></target></pool>", "unknown suffix 'parsecs'"],
  ])('refuses %s', (doc, message) => {
    expect(xmlError(() => parsePoolXml(doc)).message).toContain(message);
  });

  it('formats a model without XML', () => {
    const out = formatPoolXml({ type: 'netfs', name: 'nfs', uuid: '7641d5a8-af11-f730-a34e-0a7dfcede71f', source: { hosts: [{ name: 'filer' }], dir: '/export', format: 'nfs' }, target: { path: '/mnt/nfs' } });
    expect(parsePoolXml(out).xml).toBe(out);
    expect(out).toContain("<host name='filer'/>");
  });
});

describe('storage volume XML', () => {
  it('parses capacity, allocation, format and backing store', () => {
    const v = parseVolumeXml(corpus('libvirt/storage/storagevolxml2xmlin/vol-qcow2.xml'));
    expect(v).toMatchObject({
      name: 'OtherDemo.img',
      key: '/var/lib/libvirt/images/OtherDemo.img',
      capacityBytes: 5 * 1024 ** 3,
      allocationBytes: 294912,
      target: { path: '/var/lib/libvirt/images/OtherDemo.img', format: 'qcow2', permissions: { mode: '0644', owner: 0, group: 0 } },
      backingStore: { path: '/dev/null', format: 'raw' },
    });
    const sparse = parseVolumeXml(corpus('libvirt/storage/storagevolxml2xmlin/vol-file.xml'));
    expect([sparse.capacityBytes, sparse.allocationBytes, sparse.target?.permissions?.owner]).toEqual([1024 ** 4, 0, 744]);
  });

  it('defaults allocation to capacity and keeps features', () => {
    const v = parseVolumeXml("<volume><name>v</name><capacity unit='M'>1</capacity><target><format type='qcow2'/><features><lazy_refcounts/></features></target></volume>");
    expect(v.allocationBytes).toBe(1024 ** 2);
    expect(v.target?.features).toEqual(['lazy_refcounts']);
  });

  it.each([
    ['<volume><capacity>1</capacity></volume>', 'missing volume name element'],
    ['<volume><name>v</name></volume>', 'missing capacity element'],
    ['<volume><name>a/b</name><capacity>1</capacity></volume>', 'name'],
    ["<volume><name>v</name><capacity unit='bogus'>1</capacity></volume>", "unknown suffix 'bogus'"],
    ["<volume><name>v</name><capacity>99999999999999999999999</capacity></volume>", 'value too large'],
    ["<volume><name>v</name><capacity>1</capacity><target><permissions><owner>root</owner></permissions></target></volume>", "/volume/target/permissions/owner: invalid value 'root'"],
  ])('refuses %s', (doc, message) => {
    expect(xmlError(() => parseVolumeXml(doc)).message).toContain(message);
  });

  it('formats a model without XML', () => {
    const out = formatVolumeXml({ name: 'disk.qcow2', capacityBytes: 10 * 1024 ** 3, target: { format: 'qcow2' }, backingStore: { path: '/base.qcow2', format: 'qcow2' } });
    expect(out).toContain(`<capacity unit='bytes'>${10 * 1024 ** 3}</capacity>`);
    expect(parseVolumeXml(out).xml).toBe(out);
  });
});

describe('parseAnyXml', () => {
  it('dispatches on the root element', () => {
    expect(parseAnyXml(corpus('libvirt/domain-xml/x86_64-pc-minimal.xml')).kind).toBe('domain');
    expect(parseAnyXml(corpus('libvirt/network/networkxml2xmlin/host-bridge-net.xml')).kind).toBe('network');
    expect(parseAnyXml(corpus('libvirt/storage/storagepoolxml2xmlin/pool-dir.xml')).kind).toBe('pool');
    expect(parseAnyXml(corpus('libvirt/storage/storagevolxml2xmlin/vol-file.xml')).kind).toBe('volume');
  });

  it('refuses other roots by name', () => {
    expect(xmlError(() => parseAnyXml('<nodedev><name>x</name></nodedev>')).message).toContain('unknown root element <nodedev>');
    expect(xmlError(() => parseNetworkXml('<domain/>')).message).toContain('unexpected root element <domain>, expecting <network>');
  });

  it('keeps everything of the corpus documents', () => {
    const rel = 'virt-manager/network/xmlparse-network-multi-in.0.xml';
    const n = parseAnyXml(corpus(rel));
    expect(losslessProblems(corpus(rel), n.definition.xml!)).toEqual([]);
  });
});
