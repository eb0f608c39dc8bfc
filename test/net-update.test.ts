import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasVirsh, virtplane as runCli } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

/** The test driver's own 'default' network, defined here too, so both sides start from the same one. */
const DEFAULT = `<network><name>default</name><uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid><forward mode='nat'/><bridge name='virbr0' stp='on' delay='0'/><ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>`;

const STEPS: string[][] = [
  ['add', 'ip-dhcp-host', "<host mac='52:54:00:00:00:01' name='a' ip='192.168.122.5'/>"],
  ['add', 'ip-dhcp-host', "<host mac='52:54:00:00:00:01' name='b' ip='192.168.122.6'/>"],
  ['modify', 'ip-dhcp-host', "<host mac='52:54:00:00:00:09' ip='192.168.122.7'/>"],
  ['delete', 'ip-dhcp-host', "<host mac='52:54:00:00:00:02'/>"],
  ['add-first', 'ip-dhcp-host', "<host mac='52:54:00:00:00:03' name='c' ip='192.168.122.30'/>"],
  ['add', 'dns-host', "<host ip='192.168.122.9'><hostname>x</hostname></host>"],
  ['modify', 'dns-host', "<host ip='192.168.122.9'><hostname>y</hostname></host>"],
  ['delete', 'dns-host', "<host ip='192.168.122.99'><hostname>z</hostname></host>"],
  ['add', 'dns-host', "<host ip='192.168.122.9'><hostname>x2</hostname></host>"],
  ['add', 'dns-host', "<host ip='192.168.122.10'><hostname>x</hostname></host>"],
  ['delete', 'dns-host', "<host ip='192.168.122.10'><hostname>other</hostname></host>"],
  ['modify', 'ip-dhcp-host', "<host mac='52:54:00:00:00:01' name='a2' ip='192.168.122.8'/>"],
  ['delete', 'ip-dhcp-host', "<host mac='52:54:00:00:00:03'/>"],
];

describe('net-update of ip-dhcp-host and dns-host', () => {
  let stack: Stack;
  const cli = (...args: string[]) => runCli({ VIRTPLANE_NATS_URL: stack.nats.url, VIRTPLANE_DATA_DIR: stack.dataDir }, ...args);
  beforeAll(async () => {
    stack = await startStack({ services: ['command', 'projector'] });
    await stack.client.netDefine({ xml: DEFAULT });
    await stack.client.netStart('default');
  }, 60_000);
  afterAll(async () => stack?.stop());

  it("answers each step as libvirt's test driver does, side by side", async () => {
    const ours: string[] = [];
    for (const [command, section, xml] of STEPS) {
      const r = await cli('net-update', 'default', command!, section!, xml!, '--config');
      ours.push(...`${r.stdout}${r.stderr}`.split('\n').filter(Boolean).map((l) => l.replace(/ \[[a-z-]+\]$/, '')));
    }
    const expected = [
      'Updated network default persistent config',
      'error: Failed to update network default',
      `error: Requested operation is not valid: there is an existing dhcp host entry in network 'default' that matches "<host mac='52:54:00:00:00:01' name='b' ip='192.168.122.6'/>"`,
      'error: Failed to update network default',
      `error: Requested operation is not valid: couldn't locate an existing dhcp host entry with "mac='52:54:00:00:00:09'" "name='(null)'" "ip='192.168.122.7'" in network 'default'`,
      'error: Failed to update network default',
      "error: Requested operation is not valid: couldn't locate a matching dhcp host entry in network 'default'",
      'Updated network default persistent config',
      'Updated network default persistent config',
      'error: Failed to update network default',
      'error: Operation not supported: DNS HOST records cannot be modified, only added or deleted',
      'error: Failed to update network default',
      "error: Requested operation is not valid: couldn't locate a matching DNS HOST record in network default",
      'error: Failed to update network default',
      'error: Requested operation is not valid: there is already at least one DNS HOST record with a matching field in network default',
      'Updated network default persistent config',
      'Updated network default persistent config',
      'Updated network default persistent config',
      'Updated network default persistent config',
    ];
    expect(ours).toEqual(expected);
    if (hasVirsh) {
      const script = STEPS.map(([c, s, x]) => `net-update default ${c} ${s} "${x}" --config`).join('; ');
      const { stdout } = await promisify(execFile)('sh', ['-c', `virsh -c test:///default '${script.replace(/'/g, "'\\''")}' 2>&1; true`]);
      expect(stdout.split('\n').filter(Boolean)).toEqual(expected);
    }
    // The config holds what was added, in order; the running network is as it started.
    const view = await stack.client.netGet('default');
    expect(view.nextDefinition?.ips[0]?.dhcp?.hosts).toEqual([{ mac: '52:54:00:00:00:01', name: 'a2', ip: '192.168.122.8' }]);
    expect(view.nextDefinition?.dns?.hosts).toEqual([{ ip: '192.168.122.9', hostnames: ['x'] }]);
    expect(view.definition.ips[0]?.dhcp?.hosts).toEqual([]);
    const inactive = await cli('net-dumpxml', 'default', '--inactive');
    expect(inactive.stdout).toContain("<host mac='52:54:00:00:00:01' name='a2' ip='192.168.122.8'/>");
    expect(inactive.stdout).toMatch(/<host ip='192\.168\.122\.9'>\s*<hostname>x<\/hostname>\s*<\/host>/);
  });

  it('--current on a running network is its live state; hostile and malformed elements and an unknown network record nothing', async () => {
    const live = await cli('net-update', 'default', 'add', 'ip-dhcp-host', "<host mac='52:54:00:00:00:04' ip='192.168.122.40'/>");
    expect(live).toMatchObject({ code: 0, stdout: 'Updated network default live state\n' });
    expect((await cli('net-dumpxml', 'default')).stdout).toContain("<host mac='52:54:00:00:00:04' ip='192.168.122.40'/>");
    expect((await cli('net-dumpxml', 'default', '--inactive')).stdout).not.toContain('52:54:00:00:00:04');
    const before = (await stack.client.netGet('default')).version;
    for (const [xml, why] of [
      [`<!DOCTYPE h [<!ENTITY a "aa">]><host mac='52:54:00:00:00:05'/>`, /DOCTYPE|ENTITY/],
      ["<host mac='52:54:00:00:00:05'/></dhcp></ip><ip address='10.9.9.1' prefix='8'><dhcp><host mac='52:54:00:00:00:06'/>", /not well-formed/],
      ["<range start='192.168.122.2' end='192.168.122.3'/>", /unexpected element <range>, expecting <host>, while updating network 'default'/],
      ["<host mac='not-a-mac' ip='192.168.122.41'/>", /mac/],
      [`<host mac='52:54:00:00:00:07' name='${'n'.repeat(70_000)}'/>`, /larger than 65536 bytes|too big/i],
    ] as const) {
      const r = await cli('net-update', 'default', 'add', 'ip-dhcp-host', xml, '--config');
      expect(r.code, xml.slice(0, 40)).toBe(1);
      expect(r.stderr, xml.slice(0, 40)).toMatch(why);
    }
    expect((await cli('net-update', 'nope', 'add', 'dns-host', "<host ip='1.2.3.4'><hostname>q</hostname></host>", '--config')).stderr).toBe(
      "error: failed to get network 'nope'\nerror: Network not found: no network with matching name 'nope' [no-network]\n",
    );
    expect((await cli('net-update', 'default', 'replace', 'dns-host', '<host/>')).code).toBe(2);
    expect((await cli('net-update', 'default', 'add', 'dns-host', '<host/>', '--current', '--live')).code).toBe(2);
    expect((await stack.client.netGet('default')).version).toBe(before);
  });

  it('on a stopped network --current is its config, and it is in force when the network starts', async () => {
    await stack.client.netDestroy('default');
    // What was changed live only went with the running network.
    expect((await cli('net-dumpxml', 'default')).stdout).not.toContain('52:54:00:00:00:04');
    expect((await cli('net-update', 'default', 'add', 'dns-host', "<host ip='192.168.122.12'><hostname>v</hostname></host>", '--live')).stderr).toBe(
      'error: Failed to update network default\nerror: Requested operation is not valid: network is not running [operation-invalid]\n',
    );
    const r = await cli('net-update', 'default', 'add', 'dns-host', "<host ip='192.168.122.11'><hostname>w</hostname></host>");
    expect(r).toMatchObject({ code: 0, stdout: 'Updated network default persistent config\n' });
    await stack.client.netStart('default');
    const view = await stack.client.netGet('default');
    expect(view.definition.dns?.hosts).toEqual([
      { ip: '192.168.122.9', hostnames: ['x'] },
      { ip: '192.168.122.11', hostnames: ['w'] },
    ]);
    expect(view.definition.ips[0]?.dhcp?.hosts).toEqual([{ mac: '52:54:00:00:00:01', name: 'a2', ip: '192.168.122.8' }]);
  });

  it('--live, --current and --live --config on a running network answer as virsh does, side by side', async () => {
    const steps: string[][] = [
      ['net-update', 'default', 'add', 'ip-dhcp-host', "<host mac='52:54:00:00:00:21' ip='192.168.122.21'/>", '--live'],
      ['net-update', 'default', 'add', 'ip-dhcp-host', "<host mac='52:54:00:00:00:22' ip='192.168.122.22'/>"],
      ['net-update', 'default', 'add', 'ip-dhcp-host', "<host mac='52:54:00:00:00:23' ip='192.168.122.23'/>", '--live', '--config'],
      ['net-update', 'default', 'add', 'ip-dhcp-host', "<host mac='52:54:00:00:00:21' ip='192.168.122.24'/>", '--live'],
      ['net-destroy', 'default'],
      ['net-update', 'default', 'add', 'ip-dhcp-host', "<host mac='52:54:00:00:00:25' ip='192.168.122.25'/>", '--live'],
    ];
    const ours: string[] = [];
    for (const args of steps) {
      const r = await cli(...args);
      ours.push(...`${r.stdout}${r.stderr}`.split('\n').filter(Boolean).map((l) => l.replace(/ \[[a-z-]+\]$/, '')));
    }
    const expected = [
      'Updated network default live state',
      'Updated network default live state',
      'Updated network default persistent config and live state',
      'error: Failed to update network default',
      `error: Requested operation is not valid: there is an existing dhcp host entry in network 'default' that matches "<host mac='52:54:00:00:00:21' name='(null)' ip='192.168.122.24'/>"`,
      'Network default destroyed',
      'error: Failed to update network default',
      'error: Requested operation is not valid: network is not running',
    ];
    expect(ours).toEqual(expected);
    if (hasVirsh) {
      const script = steps.map((a) => a.map((x) => (x.startsWith('<') ? `"${x}"` : x)).join(' ')).join('; ');
      const { stdout } = await promisify(execFile)('sh', ['-c', `virsh -c test:///default '${script.replace(/'/g, "'\\''")}' 2>&1; true`]);
      expect(stdout.split('\n').filter(Boolean)).toEqual(expected);
    }
    // Stopped: the live-only entries went with the running network; --live --config's stayed in the config.
    const hosts = (await stack.client.netGet('default')).definition.ips[0]?.dhcp?.hosts.map((h) => h.mac);
    expect(hosts).toContain('52:54:00:00:00:23');
    expect(hosts).not.toContain('52:54:00:00:00:21');
    expect(hosts).not.toContain('52:54:00:00:00:22');
  });
});
