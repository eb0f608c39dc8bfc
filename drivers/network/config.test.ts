import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { NetworkDefinition } from '../../contracts/network/definition.ts';
import { dnsmasqConf, hasDhcp } from './dnsmasq.ts';
import { dhcpHostsText } from './dhcp-hosts.ts';
import { addPort, networkTables, portChain, removePort, subnetOf, tableName } from './nft.ts';

const files = { conf: '/s/d.conf', pid: '/s/d.pid', leases: '/s/d.leases', hosts: '/s/d.hostsfile' };
const def = (ips: unknown[], extra: Record<string, unknown> = {}) =>
  NetworkDefinition.parse({ name: 'n', uuid: randomUUID(), ips, ...extra });

describe('dnsmasq configuration', () => {
  it('serves DHCP for each range and host, with DNS off', () => {
    const d = def(
      [
        {
          address: '192.168.122.1',
          prefix: 24,
          dhcp: {
            ranges: [{ start: '192.168.122.2', end: '192.168.122.254' }],
            hosts: [{ mac: '52:54:00:00:00:01', ip: '192.168.122.5', name: 'db' }],
          },
        },
        { family: 'ipv6', address: 'fd00::1', prefix: 64, dhcp: { ranges: [{ start: 'fd00::10', end: 'fd00::ff' }], hosts: [] } },
      ],
      { domain: 'lab.example' },
    );
    expect(hasDhcp(d)).toBe(true);
    const conf = dnsmasqConf(d, 'virbr0', files, 'dnsmasq');
    expect(conf).toContain('interface=virbr0\n');
    expect(conf).toContain('port=0\n');
    expect(conf).toContain('dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0\n');
    expect(conf).toContain('dhcp-range=fd00::10,fd00::ff,64\n');
    // Fixed hosts are in their own file, which dnsmasq re-reads on SIGHUP (net-update --live).
    expect(conf).not.toContain('dhcp-host=');
    expect(conf).toContain('dhcp-hostsfile=/s/d.hostsfile\n');
    expect(dhcpHostsText(d)).toBe('52:54:00:00:00:01,192.168.122.5,db\n');
    expect(conf).toContain('dhcp-lease-max=253\n');
    expect(conf).toContain('pid-file=/s/d.pid\n');
    expect(conf).toContain('user=dnsmasq\n');
    expect(conf).toContain('domain=lab.example\n');
    expect(hasDhcp(def([{ address: '10.0.0.1', prefix: 8 }]))).toBe(false);
  });

  it('refuses values that could smuggle options into the file', () => {
    const bad = (patch: Record<string, unknown>) =>
      def([{ address: '10.0.0.1', prefix: 24, dhcp: { ranges: [{ start: '10.0.0.2', end: '10.0.0.9' }], hosts: [], ...patch } }]);
    expect(() => dnsmasqConf(bad({ ranges: [{ start: '10.0.0.2\ndhcp-script=/x', end: '10.0.0.9' }] }), 'b', files)).toThrowError(
      /invalid IPv4 DHCP range start/,
    );
    expect(() => dhcpHostsText(bad({ hosts: [{ name: 'a\nconf-file=/etc/x' }] }))).toThrowError(/invalid DHCP host name/);
    // The file checks every value itself, even one a definition's schema let through.
    const unchecked = (host: Record<string, string>) => {
      const d = bad({});
      d.ips[0]!.dhcp!.hosts.push(host);
      return d;
    };
    expect(() => dhcpHostsText(unchecked({ mac: '52:54:00:00:00:01\ndhcp-script=/x' }))).toThrowError(/invalid DHCP host MAC/);
    expect(() => dhcpHostsText(unchecked({ mac: '52:54:00:00:00:01', ip: '10.0.0.5,set:x' }))).toThrowError(/invalid IPv4 host address/);
    expect(() => dhcpHostsText(unchecked({ mac: '52:54:00:00:00:01', name: 'a,b' }))).toThrowError(/invalid DHCP host name/);
    expect(() => dnsmasqConf(def([], { domain: 'x\nport=53' }), 'b', files)).toThrowError(/invalid network domain/);
    expect(() => dnsmasqConf(bad({}), 'b', files, 'root\nx')).toThrowError(/invalid dnsmasq user/);
  });
});

describe('nft rule sets', () => {
  it('computes subnets and rejects bad addresses', () => {
    expect(subnetOf('ipv4', '192.168.122.77', 24).cidr).toBe('192.168.122.0/24');
    expect(subnetOf('ipv4', '10.1.2.3', 0).cidr).toBe('0.0.0.0/0');
    expect(subnetOf('ipv6', 'fd00:1:2:3::1', 48).cidr).toBe('fd00:1:2:0:0:0:0:0/48');
    expect(() => subnetOf('ipv4', '300.1.1.1', 24)).toThrowError(/invalid IPv4/);
    expect(() => subnetOf('ipv6', '10.0.0.1', 64)).toThrowError(/invalid IPv6/);
  });

  it('masquerades only in nat mode and only IPv4; isolated drops forwarding', () => {
    const subnets = [subnetOf('ipv4', '10.0.0.1', 24), subnetOf('ipv6', 'fd00::1', 64)];
    const nat = networkTables({ table: 't', networkName: 'n', bridge: 'br0', mode: 'nat', subnets });
    expect(nat).toContain('ip saddr 10.0.0.0/24 ip daddr != 10.0.0.0/24 masquerade');
    expect(nat).not.toMatch(/ip6 saddr .* masquerade/);
    const route = networkTables({ table: 't', networkName: 'n', bridge: 'br0', mode: 'route', subnets });
    expect(route).not.toContain('masquerade');
    expect(route).toContain('iifname "br0" ip saddr 10.0.0.0/24 accept');
    const iso = networkTables({ table: 't', networkName: 'n"; flush ruleset; "', bridge: 'br0', mode: 'isolated', subnets });
    expect(iso).toContain('iifname "br0" drop');
    expect(iso).not.toContain('flush ruleset;');
  });

  it('names tables per network and chains per port', () => {
    expect(tableName('7a693763-9708-4375-8a1b-000000000000')).toBe('virtplane_7a69376397084375');
    expect(portChain('vm-1.eth0')).toBe('port_vm_1_eth0');
    expect(addPort('t', 'vnet3', '52:54:00:00:00:03')).toContain('add element bridge t ports { "vnet3" : jump port_vnet3 }');
    expect(removePort('t', 'vnet3').split('\n')[0]).toBe('delete element bridge t ports { "vnet3" }');
  });
});
