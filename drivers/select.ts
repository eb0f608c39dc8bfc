import { join } from 'node:path';
import { virtError } from '../contracts/errors.ts';
import type { NetworkDefinition } from '../contracts/network/definition.ts';
import type { HypervisorDriver } from './hypervisor.ts';
import { NetworkHost } from './network/index.ts';
import { QemuDriver, qemuAvailable } from './qemu/index.ts';
import { TestDriver } from './test/test-driver.ts';

export interface SelectedDrivers {
  drivers: HypervisorDriver[];
  network: NetworkHost | null;
  description: string;
}

/**
 * The drivers a host runs. The test driver is always there for `test` domains; its guests live in a
 * state file, so they outlive the agent process the way real guests do. With qemu-system installed
 * (or asked for), `kvm` and `qemu` domains run as real guests, their interfaces on tap devices the
 * network driver names and cleans up.
 */
export const selectDrivers = async (
  choice: 'auto' | 'test' | 'qemu',
  stateDir: string,
  /** Resolves a virtual network by name; only active networks may take guests. */
  lookupNetwork: (name: string) => Promise<NetworkDefinition | undefined> = async () => undefined,
  /** How long each test-driver operation takes: lets fault tests make operations outlast their deadline. */
  testLatencyMs = 0,
  qemuOptions: { acpiResendMs?: number } = {},
  /** Non-fatal problems of the host's network state (a damaged file moved aside, an unreachable hosts file). */
  onWarning?: (message: string) => void,
): Promise<SelectedDrivers> => {
  const test = new TestDriver({ stateFile: join(stateDir, 'test-driver.json'), ...(testLatencyMs > 0 ? { latencyMs: testLatencyMs } : {}) });
  if (choice === 'test') return { drivers: [test], network: null, description: 'test (domain type "test")' };
  const qemu = await qemuAvailable();
  if (!qemu.ok) {
    if (choice === 'qemu') throw new Error(`the qemu driver is not available on this host: ${qemu.reason ?? 'qemu-system not found'}`);
    return { drivers: [test], network: null, description: `test (domain type "test"); qemu unavailable: ${qemu.reason ?? 'qemu-system not found'}` };
  }
  const network = await NetworkHost.open({ stateDir: join(stateDir, 'network'), ...(onWarning ? { onWarning } : {}) });
  const driver = new QemuDriver({
    stateDir,
    ...qemuOptions,
    prepareInterfaces: async (def) => {
      const plugged = [];
      try {
        for (const iface of def.devices.interfaces) {
          if (iface.type === 'user') {
            plugged.push(undefined);
            continue;
          }
          if (iface.type === 'direct' || iface.type === 'vhostuser') {
            throw virtError('operation-unsupported', `interface type '${iface.type}' is not supported by the qemu driver yet`);
          }
          const p = await network.plugInterface(def.uuid, iface, lookupNetwork);
          plugged.push({ ifname: p.ifname, ...(p.bridge ? { bridge: p.bridge } : {}), ...(p.network ? { network: p.network } : {}) });
        }
      } catch (e) {
        // One interface refused: those plugged before it would outlive a start that never happens.
        for (const p of plugged) if (p) await network.unplugInterface(def.uuid, p.ifname).catch(() => undefined);
        throw e;
      }
      return plugged;
    },
    plugInterface: async (uuid, iface) => {
      const p = await network.plugInterface(uuid, iface, lookupNetwork);
      return { ifname: p.ifname, ...(p.bridge ? { bridge: p.bridge } : {}), ...(p.network ? { network: p.network } : {}) };
    },
    releaseInterfaces: async (uuid, ifnames) => {
      for (const ifname of ifnames) await network.unplugInterface(uuid, ifname);
    },
  });
  // Names of running guests' devices are taken again before anything new is named.
  await network.reseed(network.listInterfaces().map((i) => i.ifname));
  return {
    drivers: [test, driver],
    network,
    description: `test (domain type "test") and qemu ${qemu.version ?? ''} at ${qemu.binary} with ${qemu.kvm ? 'KVM' : 'TCG (KVM does not boot guests on this host)'} (domain types "kvm", "qemu")`,
  };
};
