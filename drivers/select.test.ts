import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDomainXml } from '../contracts/xml/index.ts';
import type { HypervisorDriver } from './hypervisor.ts';
import { qemuAvailable } from './qemu/host.ts';
import { selectDrivers, type SelectedDrivers } from './select.ts';

/**
 * A qemu start that fails before its guest runs gives back the taps it made for it: a domain refused
 * again and again must not leave a tap on the host each time. Real taps on a bridge of the test's own.
 */
const BRIDGE = `vprv${process.pid.toString(36)}`;
const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const canMakeBridges = await (async () => {
  if (!(await qemuAvailable()).ok) return false;
  try {
    ip('link', 'add', BRIDGE, 'type', 'bridge');
    return true;
  } catch {
    return false;
  }
})();

/** The ports of the test's bridge: the taps guests were given on it. */
const bridgePorts = () => ip('-o', 'link', 'show', 'master', BRIDGE).split('\n').filter(Boolean);

const domain = (name: string, extra: string) =>
  parseDomainXml(
    `<domain type='qemu'><name>${name}</name><uuid>${randomUUID()}</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu>` +
      `<os><type arch='x86_64'>hvm</type></os><devices><interface type='bridge'><source bridge='${BRIDGE}'/></interface>${extra}</devices></domain>`,
  );

describe.skipIf(!canMakeBridges)('a qemu start that fails', () => {
  let dir: string;
  let selected: SelectedDrivers;
  let qemu: HypervisorDriver;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vp-select-'));
    selected = await selectDrivers('qemu', dir);
    qemu = selected.drivers.find((d) => d.name === 'qemu')!;
  });

  afterAll(async () => {
    for (const d of selected?.drivers ?? []) await d.close();
    await selected?.network?.close();
    if (canMakeBridges) ip('link', 'del', BRIDGE);
    await rm(dir, { recursive: true, force: true });
  });

  it('on an interface the driver refuses after one it plugged: that one is unplugged', async () => {
    const def = domain('revert-direct', `<interface type='direct'><source dev='lo' mode='bridge'/></interface>`);
    await expect(qemu.start(def)).rejects.toMatchObject({ code: 'operation-unsupported' });
    expect(bridgePorts()).toEqual([]);
    expect(selected.network!.listInterfaces().filter((i) => i.domainUuid === def.uuid)).toEqual([]);
  });

  it("on a definition qemu's command line refuses, after its taps and VNC port were taken: both are given back", async () => {
    const def = domain('revert-spice', `<graphics type='vnc' autoport='yes'/><graphics type='spice'/>`);
    await expect(qemu.start(def)).rejects.toMatchObject({ code: 'operation-unsupported', message: expect.stringMatching(/graphics type 'spice'/) });
    expect(bridgePorts()).toEqual([]);
    expect(selected.network!.listInterfaces().filter((i) => i.domainUuid === def.uuid)).toEqual([]);
  });
});
