import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import { parseDomainXml } from '../../contracts/xml/index.ts';
import { buildQemuCommand, defaultMac, diskNameIndex, type NetdevBackend, type QemuRuntime } from './argv.ts';

/**
 * The command line must match what libvirt generates for the same XML: these compare, option by
 * option, against libvirt's own expected output (tests/qemuxmlconfdata/*.x86_64-latest.args).
 */

const DIR = '/work/shared/conformance/libvirt/domain-xml';

interface ArgsFile {
  env: Record<string, string>;
  binary: string;
  args: string[];
}

/** Reads libvirt's .args format: one option per line, shell-quoted, joined with backslashes. */
function parseArgsFile(text: string): ArgsFile {
  const tokens: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/ \\$/, '').trim();
    if (!line) continue;
    let cur = '';
    let quoted = false;
    let inToken = false;
    for (const ch of line) {
      if (ch === "'") {
        quoted = !quoted;
        inToken = true;
      } else if (ch === ' ' && !quoted) {
        if (inToken) tokens.push(cur);
        cur = '';
        inToken = false;
      } else {
        cur += ch;
        inToken = true;
      }
    }
    if (inToken) tokens.push(cur);
  }
  const env: Record<string, string> = {};
  let i = 0;
  while (/^[A-Z_]+=/.test(tokens[i]!)) {
    const [k, ...v] = tokens[i]!.split('=');
    env[k!] = v.join('=');
    i++;
  }
  // Monitor fds differ between versions of the same file: normalise the placeholder.
  const args = tokens.slice(i + 1).map((t) => t.replace('fd=@mon-fd@', 'fd=1729'));
  return { env, binary: tokens[i]!, args };
}

const load = (name: string, xmlFile = `${name}.xml`) => ({
  def: parseDomainXml(readFileSync(`${DIR}/${xmlFile}`, 'utf8')) as DomainDefinition,
  expected: parseArgsFile(readFileSync(`${DIR}/${name}.x86_64-latest.args`, 'utf8')),
});

const libvirtRuntime = (def: DomainDefinition, netdevs?: Array<NetdevBackend | undefined>): QemuRuntime => ({
  domainDir: `/var/lib/libvirt/qemu/domain--1-${def.name}`,
  monitor: { fd: 1729 },
  ...(netdevs ? { netdevs } : {}),
});

/** Pairs options with their values so a failure points at the option that differs. */
const options = (args: string[]): string[] => {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    if (next !== undefined && !next.startsWith('-')) {
      out.push(`${args[i]} ${next}`);
      i++;
    } else out.push(args[i]!);
  }
  return out;
};

const CASES: Array<{ name: string; xml?: string; netdevs?: Array<NetdevBackend | undefined> }> = [
  { name: 'x86_64-pc-minimal' },
  { name: 'disk-virtio', xml: 'disk-virtio.x86_64-latest.xml' },
  { name: 'disk-cdrom' },
  { name: 'net-virtio', xml: 'net-virtio.x86_64-latest.xml' },
  { name: 'net-eth', xml: 'net-eth.x86_64-latest.xml', netdevs: [{ fd: '3' }] },
  { name: 'net-openvswitch', netdevs: [{ fd: '102' }] },
  {
    name: 'net-mtu',
    netdevs: [
      { fd: '102', vhostfd: '44' },
      { fd: '102', vhostfd: '44' },
    ],
  },
  { name: 'graphics-vnc' },
  { name: 'console-virtio' },
  { name: 'cputune' },
];

describe('qemu argv matches libvirt for the same XML', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const { def, expected } = load(c.name, c.xml);
      const cmd = buildQemuCommand(def, libvirtRuntime(def, c.netdevs));
      expect(options(cmd.args)).toEqual(options(expected.args));
      expect(cmd.binary).toBe(expected.binary);
      for (const k of ['LC_ALL', 'HOME', 'XDG_DATA_HOME', 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME']) {
        expect(cmd.env[k], k).toBe(expected.env[k]);
      }
    });
  }

  for (const name of ['graphics-spice', 'disk-network-rbd', 'net-vhostuser', 'hugepages-default']) {
    it(`${name} is refused as unsupported, not run differently`, () => {
      const { def } = load(name);
      expect(() => buildQemuCommand(def, libvirtRuntime(def, [{ fd: '3' }, { fd: '4' }, { fd: '5' }]))).toThrowError(
        expect.objectContaining({ code: 'operation-unsupported' }),
      );
    });
  }
});

const base = (over: Partial<DomainDefinition> = {}): DomainDefinition => ({
  ...parseDomainXml(`<domain type='qemu'><name>t</name><uuid>6ba7b810-9dad-41d1-80b4-00c04fd430c8</uuid>
    <memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>
    <devices><serial type='pty'/></devices></domain>`),
  ...over,
});

const rt: QemuRuntime = {
  domainDir: '/run/vp/d',
  monitor: { path: '/run/vp/d/qmp.sock' },
  pidfile: '/run/vp/d/qemu.pid',
  consoleLog: '/run/vp/d/console.log',
};

describe('qemu argv for virtplane runtime', () => {
  it('uses a unix monitor socket, a pidfile and logs the first serial port', () => {
    const { args } = buildQemuCommand(base(), rt);
    const o = options(args);
    expect(o).toContain('-chardev socket,id=charmonitor,path=/run/vp/d/qmp.sock,server=on,wait=off');
    expect(o).toContain('-chardev pty,id=charserial0,logfile=/run/vp/d/console.log,logappend=on');
    expect(o.at(-1)).toBe('-pidfile /run/vp/d/qemu.pid');
    expect(o).toContain('-no-shutdown');
    expect(o).toContain('-S');
  });

  it('opens taps by name with scripts disabled', () => {
    const def = parseDomainXml(`<domain type='kvm'><name>n</name><uuid>6ba7b810-9dad-41d1-80b4-00c04fd430c8</uuid>
      <memory unit='MiB'>64</memory><vcpu>2</vcpu><os><type>hvm</type></os>
      <devices><interface type='bridge'><source bridge='br0'/><mac address='52:54:00:aa:bb:cc'/><model type='virtio'/></interface>
      <interface type='network'><source network='default'/></interface></devices></domain>`);
    const { args } = buildQemuCommand(def, { ...rt, netdevs: [{ tap: 'vnet3', vhost: true }, { tap: 'vnet4' }] });
    const o = options(args);
    expect(o).toContain('-accel kvm');
    expect(o).toContain(
      `-netdev {"type":"tap","ifname":"vnet3","script":"no","downscript":"no","vhost":true,"id":"hostnet0"}`,
    );
    expect(o).toContain(
      `-device {"driver":"virtio-net-pci","netdev":"hostnet0","id":"net0","mac":"52:54:00:aa:bb:cc","bus":"pci.0","addr":"0x2"}`,
    );
    // No model means rtl8139 on x86.
    expect(o).toContain(
      `-device {"driver":"rtl8139","netdev":"hostnet1","id":"net1","mac":"${def.devices.interfaces[1]!.mac}","bus":"pci.0","addr":"0x3"}`,
    );
    expect(o).toContain('-smp 2,sockets=2,cores=1,threads=1');
  });

  it('gives an interface without a MAC one that is stable across restarts', () => {
    const def = base();
    def.devices.interfaces = [{ type: 'user' }];
    const a = options(buildQemuCommand(def, rt).args).find((x) => x.includes('"netdev":"hostnet0"'));
    expect(a).toContain(`"mac":"${defaultMac(def.uuid, 0)}"`);
    expect(defaultMac(def.uuid, 0)).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(defaultMac(def.uuid, 1)).not.toBe(defaultMac(def.uuid, 0));
  });

  it('refuses a tap interface nobody prepared', () => {
    const def = parseDomainXml(`<domain type='qemu'><name>n</name><uuid>6ba7b810-9dad-41d1-80b4-00c04fd430c8</uuid>
      <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>
      <devices><interface type='bridge'><source bridge='br0'/></interface></devices></domain>`);
    expect(() => buildQemuCommand(def, rt)).toThrowError(expect.objectContaining({ code: 'operation-failed' }));
  });

  it('boots a kernel directly and turns ACPI on when <acpi/> is present', () => {
    const def = parseDomainXml(`<domain type='qemu'><name>k</name><uuid>6ba7b810-9dad-41d1-80b4-00c04fd430c8</uuid>
      <memory unit='KiB'>100000</memory><vcpu current='1'>2</vcpu>
      <os><type arch='x86_64' machine='pc'>hvm</type><kernel>/k</kernel><initrd>/i</initrd><cmdline>console=ttyS0 a,b</cmdline></os>
      <features><acpi/></features><devices/></domain>`);
    const o = options(buildQemuCommand(def, rt).args);
    expect(o).toContain('-machine pc,usb=off,dump-guest-core=off,memory-backend=pc.ram,acpi=on');
    expect(o).toContain('-m size=100352k');
    expect(o).toContain('-smp 1,maxcpus=2,sockets=2,cores=1,threads=1');
    const boot = o.indexOf('-boot strict=on');
    expect(o.slice(boot, boot + 4)).toEqual(['-boot strict=on', '-kernel /k', '-initrd /i', '-append console=ttyS0 a,b']);
  });

  it('gives qcow2 disks a format node and honours cache modes like libvirt', () => {
    const def = parseDomainXml(`<domain type='qemu'><name>q</name><uuid>6ba7b810-9dad-41d1-80b4-00c04fd430c8</uuid>
      <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type><boot dev='hd'/></os><devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none' io='native'/><source file='/img/a.qcow2'/><target dev='vda' bus='virtio'/><serial>S1</serial></disk>
      <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/img/b.raw'/><target dev='sda' bus='scsi'/><readonly/></disk>
      <memballoon model='none'/></devices></domain>`);
    const o = options(buildQemuCommand(def, rt).args);
    expect(o).toContain(
      `-blockdev {"driver":"file","filename":"/img/a.qcow2","aio":"native","node-name":"libvirt-2-storage","cache":{"direct":true,"no-flush":false},"auto-read-only":true,"discard":"unmap"}`,
    );
    expect(o).toContain(
      `-blockdev {"node-name":"libvirt-2-format","read-only":false,"cache":{"direct":true,"no-flush":false},"driver":"qcow2","file":"libvirt-2-storage"}`,
    );
    // The SCSI controller is implicit and, like every controller, is slotted after the NICs and before virtio disks.
    expect(o).toContain(`-device {"driver":"lsi","id":"scsi0","bus":"pci.0","addr":"0x2"}`);
    expect(o).toContain(
      `-device {"driver":"virtio-blk-pci","bus":"pci.0","addr":"0x3","drive":"libvirt-2-format","id":"virtio-disk0","bootindex":1,"write-cache":"on","serial":"S1"}`,
    );
    expect(o).toContain(
      `-device {"driver":"scsi-hd","bus":"scsi0.0","scsi-id":0,"device_id":"drive-scsi0-0-0","drive":"libvirt-1-storage","id":"scsi0-0-0"}`,
    );
  });

  it('allocates VNC from the runtime and adds the default video card', () => {
    const def = parseDomainXml(`<domain type='qemu'><name>v</name><uuid>6ba7b810-9dad-41d1-80b4-00c04fd430c8</uuid>
      <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>
      <input type='tablet' bus='usb'/><graphics type='vnc' autoport='yes'/><rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
      <channel type='unix'><target type='virtio' name='org.example.port.0'/></channel></devices></domain>`);
    const o = options(buildQemuCommand(def, { ...rt, vncPorts: [5907] }).args);
    expect(o).toContain('-vnc 127.0.0.1:7,audiodev=audio1');
    expect(o).not.toContain('-display none');
    expect(o).toContain(`-device {"driver":"cirrus-vga","id":"video0","bus":"pci.0","addr":"0x2"}`);
    expect(o).toContain(`-device {"driver":"usb-tablet","id":"input0","bus":"usb.0","port":"1"}`);
    expect(o).toContain(`-device {"driver":"virtio-serial-pci","id":"virtio-serial0","bus":"pci.0","addr":"0x3"}`);
    expect(o).toContain(
      `-device {"driver":"virtserialport","bus":"virtio-serial0.0","nr":1,"chardev":"charchannel0","id":"channel0","name":"org.example.port.0"}`,
    );
    expect(o).toContain(`-device {"driver":"virtio-balloon-pci","id":"balloon0","bus":"pci.0","addr":"0x4"}`);
    expect(o).toContain(`-device {"driver":"virtio-rng-pci","rng":"objrng0","id":"rng0","bus":"pci.0","addr":"0x5"}`);
  });

  it('escapes commas in option values', () => {
    const def = base({ name: 'a,b' });
    const o = options(buildQemuCommand(def, { ...rt, monitor: { path: '/x,y/qmp.sock' } }).args);
    expect(o).toContain('-name guest=a,,b,debug-threads=on');
    expect(o).toContain('-chardev socket,id=charmonitor,path=/x,,y/qmp.sock,server=on,wait=off');
  });

  it('indexes disk names the way libvirt does', () => {
    expect(diskNameIndex('vda')).toBe(0);
    expect(diskNameIndex('hdd')).toBe(3);
    expect(diskNameIndex('sdz')).toBe(25);
    expect(diskNameIndex('vdaa')).toBe(26);
    expect(() => diskNameIndex('hdaxxxxxxxxxx0')).toThrow();
  });
});
