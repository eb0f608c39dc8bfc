import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DomainDefinition, InterfaceModel } from '../../contracts/domain/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import { parseDomainXml } from '../../contracts/xml/index.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole, type TinyGuest } from '../../test/fixtures/guest/build.ts';
import { QemuDriver } from './driver.ts';
import { qemuAvailable } from './host.ts';

/** Interface hot-plug on real guests: taps in the root namespace, ACPI PCI hot-plug in the guest. */

const avail = await qemuAvailable();
const BOOT_MS = 120_000;

/** Tap names unique to this run, so parallel runs and leftovers from killed runs never collide. */
const TAP_PREFIX = `vph${process.pid.toString(36)}`;

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const canMakeTaps = (() => {
  if (!avail.ok) return false;
  const probe = `${TAP_PREFIX}p`;
  try {
    ip('tuntap', 'add', 'dev', probe, 'mode', 'tap');
    ip('link', 'del', 'dev', probe);
    return true;
  } catch {
    return false;
  }
})();

const tapExists = (name: string): boolean => {
  try {
    ip('link', 'show', 'dev', name);
    return true;
  } catch {
    return false;
  }
};

/** Taps whose file descriptor a process holds open (tun fdinfo names the interface). */
const tapsHeldBy = async (pid: number): Promise<string[]> => {
  const out: string[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) !== '/dev/net/tun') continue;
    const m = /^iff:\s*(\S+)/m.exec(await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => ''));
    if (m) out.push(m[1]!);
  }
  return out;
};

const until = async (what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

interface PciDevice {
  qdev_id: string;
  class_info: { desc?: string };
  id: { device: number; vendor: number };
}

describe.skipIf(!canMakeTaps)('QemuDriver interface hot-plug', () => {
  let guest: TinyGuest;
  let stateDir: string;
  let tapSeq = 0;
  const drivers: QemuDriver[] = [];
  const pids = new Set<number>();
  const plugged: Array<{ uuid: string; iface: InterfaceModel; ifname: string }> = [];
  const released: string[] = [];

  const newDriver = () => {
    const d = new QemuDriver({
      stateDir,
      destroyGraceMs: 3000,
      unplugRetryMs: 1000,
      plugInterface: async (uuid, iface) => {
        const ifname = `${TAP_PREFIX}t${tapSeq++}`;
        ip('tuntap', 'add', 'dev', ifname, 'mode', 'tap');
        ip('link', 'set', 'dev', ifname, 'up');
        plugged.push({ uuid, iface, ifname });
        return { ifname, bridge: 'vptestbr0' };
      },
      releaseInterfaces: async (_uuid, ifnames) => {
        for (const n of ifnames) {
          released.push(n);
          if (tapExists(n)) ip('link', 'del', 'dev', n);
        }
      },
    });
    drivers.push(d);
    return d;
  };

  const boot = async (driver: QemuDriver, name: string, o: { waitReady?: boolean } = {}): Promise<DomainDefinition> => {
    const def = parseDomainXml(tinyGuestXml(guest, { type: avail.kvm ? 'kvm' : 'qemu', name }));
    expect(await driver.start(def)).toEqual({ state: 'running', reason: 'booted' });
    pids.add(driver.pid(def.uuid)!);
    // ACPI hot-plug answers only once the guest kernel has set up its PCI slots.
    if (o.waitReady !== false) await waitForConsole(consoleLog(def), READY_MARKER, { timeoutMs: BOOT_MS });
    return def;
  };

  const consoleLog = (def: DomainDefinition) => join(stateDir, 'qemu', def.uuid, 'console.log');

  const nicIds = async (driver: QemuDriver, uuid: string): Promise<string[]> => {
    const buses = await driver.monitorCommand<Array<{ devices: PciDevice[] }>>(uuid, 'query-pci');
    return buses
      .flatMap((b) => b.devices)
      .filter((x) => x.class_info.desc === 'Ethernet controller')
      .map((x) => x.qdev_id)
      .sort();
  };

  const infoNetwork = (driver: QemuDriver, uuid: string) =>
    driver.monitorCommand<string>(uuid, 'human-monitor-command', { 'command-line': 'info network' });

  const virtio = (mac: string): InterfaceModel => ({ type: 'ethernet', mac, model: 'virtio' });

  beforeAll(async () => {
    guest = await buildTinyGuest();
    stateDir = await mkdtemp(join(tmpdir(), 'vp-qemu-hotplug-'));
  }, BOOT_MS);

  afterEach(async () => {
    const sweeper = newDriver();
    for (const x of await sweeper.list()) await sweeper.destroy(x.uuid);
    await sweeper.close();
  }, BOOT_MS);

  afterAll(async () => {
    for (const d of drivers) await d.close();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const line of ip('-o', 'link', 'show').split('\n')) {
      const name = /^\d+:\s+([^:@]+)/.exec(line)?.[1];
      if (name?.startsWith(TAP_PREFIX)) ip('link', 'del', 'dev', name);
    }
    await rm(stateDir, { recursive: true, force: true });
  });

  it('refuses a domain that is not running', async () => {
    const driver = newDriver();
    const def = parseDomainXml(tinyGuestXml({ kernel: '/k', initrd: '/i', cmdline: '' }, { type: 'qemu', name: 'off' }));
    for (const p of [driver.attachInterface(def, virtio('52:54:00:00:00:01')), driver.detachInterface(def, '52:54:00:00:00:01')]) {
      const e = await p.then(() => undefined, (x: unknown) => x);
      expect(e).toBeInstanceOf(VirtError);
      expect((e as VirtError).code).toBe('operation-invalid');
      expect((e as VirtError).message).toMatch(/domain is not running/);
    }
    expect(plugged).toHaveLength(0);
  });

  it(
    'hot-plugs a virtio NIC on a tap once per MAC and unplugs it with the guest’s cooperation',
    async () => {
      const driver = newDriver();
      const def = await boot(driver, 'hotplug');
      const pid = driver.pid(def.uuid)!;
      expect(await nicIds(driver, def.uuid)).toEqual([]);

      const mac = '52:54:00:5e:00:01';
      const progress: string[] = [];
      const got = await driver.attachInterface(def, virtio(mac.toUpperCase()), { progress: (m) => progress.push(m) });
      const tap = got.ifname;
      expect(got).toEqual({ mac, ifname: tap, bridge: 'vptestbr0' });
      expect(plugged.filter((p) => p.uuid === def.uuid).map((p) => p.iface.mac)).toEqual([mac]);
      expect(progress.some((m) => m.includes('net0'))).toBe(true);
      expect(await nicIds(driver, def.uuid)).toEqual(['net0']);
      const net = await infoNetwork(driver, def.uuid);
      expect(net).toMatch(new RegExp(`net0: .*model=virtio-net-pci,macaddr=${mac}`));
      expect(net).toMatch(new RegExp(`hostnet0: .*ifname=${tap}`));
      expect(await tapsHeldBy(pid)).toEqual([tap]);
      // An attached tap has a carrier; a tap nobody holds reports NO-CARRIER.
      expect(ip('link', 'show', 'dev', tap)).toMatch(/LOWER_UP/);
      expect(driver.interfaces(def.uuid)).toEqual([tap]);
      const rec = JSON.parse(await readFile(join(stateDir, 'qemu', def.uuid, 'domain.json'), 'utf8')) as { ifnames: string[] };
      expect(rec.ifnames).toEqual([tap]);

      // The same MAC again is the same NIC: no second tap, no second device.
      expect(await driver.attachInterface(def, virtio(mac))).toEqual(got);
      expect(plugged.filter((p) => p.uuid === def.uuid)).toHaveLength(1);
      expect(await nicIds(driver, def.uuid)).toEqual(['net0']);

      await driver.detachInterface(def, '52:54:00:5e:00:99');
      expect(await nicIds(driver, def.uuid)).toEqual(['net0']);
      expect(released).not.toContain(tap);

      const detachProgress: string[] = [];
      await driver.detachInterface(def, mac.toUpperCase(), { progress: (m) => detachProgress.push(m) });
      expect(detachProgress).toEqual(['waiting for the guest to release net0']);
      expect(await nicIds(driver, def.uuid)).toEqual([]);
      expect(await infoNetwork(driver, def.uuid)).not.toMatch(/hostnet0|net0/);
      expect(released).toContain(tap);
      expect(tapExists(tap)).toBe(false);
      expect(await tapsHeldBy(pid)).toEqual([]);
      expect(driver.interfaces(def.uuid)).toEqual([]);
      await driver.detachInterface(def, mac);
      expect(released.filter((x) => x === tap)).toHaveLength(1);

      // The guest is still healthy, and its next NIC takes the first free number again.
      const again = await driver.attachInterface(def, virtio('52:54:00:5e:00:02'));
      expect(await nicIds(driver, def.uuid)).toEqual(['net0']);
      expect(await driver.destroy(def.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      expect(released).toContain(again.ifname);
      expect(tapExists(again.ifname)).toBe(false);
    },
    2 * BOOT_MS,
  );

  it(
    'keeps hot-plugged taps across a reattach, and releases them on detach and destroy',
    async () => {
      const first = newDriver();
      const def = await boot(first, 'reattach');
      const a = await first.attachInterface(def, virtio('52:54:00:5e:01:01'));
      await first.close();

      const second = newDriver();
      expect((await second.list()).map((x) => x.uuid)).toContain(def.uuid);
      expect(second.interfaces(def.uuid)).toEqual([a.ifname]);
      // Known after the reattach: no new tap for the same MAC.
      expect(await second.attachInterface(def, virtio('52:54:00:5e:01:01'))).toEqual(a);
      const b = await second.attachInterface(def, { type: 'ethernet', mac: '52:54:00:5e:01:02', model: 'e1000' });
      expect(await nicIds(second, def.uuid)).toEqual(['net0', 'net1']);
      expect(await infoNetwork(second, def.uuid)).toMatch(/net1: .*model=e1000,macaddr=52:54:00:5e:01:02/);
      expect(second.interfaces(def.uuid)).toEqual([a.ifname, b.ifname]);
      await second.close();

      const third = newDriver();
      await third.detachInterface(def, a.mac);
      expect(await nicIds(third, def.uuid)).toEqual(['net1']);
      expect(released).toContain(a.ifname);
      expect(tapExists(a.ifname)).toBe(false);
      expect(third.interfaces(def.uuid)).toEqual([b.ifname]);
      await third.close();

      const fourth = newDriver();
      expect(await fourth.destroy(def.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      expect(released).toContain(b.ifname);
      expect(tapExists(b.ifname)).toBe(false);
    },
    2 * BOOT_MS,
  );

  it(
    'asks a booting guest again until it releases the NIC',
    async () => {
      const driver = newDriver();
      const def = await boot(driver, 'booting', { waitReady: false });
      const nic = await driver.attachInterface(def, virtio('52:54:00:5e:03:01'));
      // Sent before the guest kernel runs, the first eject request is lost; the repeats are not.
      await driver.detachInterface(def, nic.mac, { signal: AbortSignal.timeout(BOOT_MS) });
      expect(await nicIds(driver, def.uuid)).toEqual([]);
      expect(released).toContain(nic.ifname);
      expect(tapExists(nic.ifname)).toBe(false);
      // The guest comes up as usual, without the NIC.
      await waitForConsole(consoleLog(def), READY_MARKER, { timeoutMs: BOOT_MS });
      expect(await nicIds(driver, def.uuid)).toEqual([]);
      expect(await driver.destroy(def.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
    },
    2 * BOOT_MS,
  );

  it(
    'gives up on a guest that does not release the NIC, and finishes the detach once it does',
    async () => {
      const driver = newDriver();
      const def = await boot(driver, 'stubborn');
      const nic = await driver.attachInterface(def, virtio('52:54:00:5e:02:01'));
      // A paused guest cannot answer the ACPI eject request.
      await driver.suspend(def.uuid);
      const err = await driver.detachInterface(def, nic.mac, { signal: AbortSignal.timeout(2000) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(VirtError);
      expect((err as VirtError).code).toBe('timeout');
      expect(driver.interfaces(def.uuid)).toEqual([nic.ifname]);
      expect(await nicIds(driver, def.uuid)).toEqual(['net0']);
      expect(released).not.toContain(nic.ifname);
      await expect(driver.attachInterface(def, virtio(nic.mac))).rejects.toMatchObject({ code: 'operation-invalid' });

      // Asking again while the request is still pending waits for the same one.
      const again = await driver.detachInterface(def, nic.mac, { signal: AbortSignal.timeout(1000) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((again as VirtError).code).toBe('timeout');

      await driver.resume(def.uuid);
      await until('the late release of the tap', () => released.includes(nic.ifname));
      expect(await nicIds(driver, def.uuid)).toEqual([]);
      expect(driver.interfaces(def.uuid)).toEqual([]);
      expect(tapExists(nic.ifname)).toBe(false);
      await driver.detachInterface(def, nic.mac);
      expect(await driver.destroy(def.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
      expect(released.filter((x) => x === nic.ifname)).toHaveLength(1);
    },
    2 * BOOT_MS,
  );
});
