import { randomBytes } from 'node:crypto';
import type { InterfaceModel } from '../../contracts/domain/definition.ts';
import type { RuntimeInterface } from '../../contracts/domain/state.ts';
import { VirtError } from '../../contracts/errors.ts';
import type { OperationOptions } from '../hypervisor.ts';
import { nicDevice, nicDriver, tapNetdev } from './argv.ts';
import type { QemuContext } from './context.ts';
import { abortReason, notRunning, within, type Domain, type NicRecord } from './guest.ts';
import { monitor, persist, queryStatus } from './monitor.ts';
import { QmpError, type QmpClient } from './qmp.ts';

const randomMac = (): string => `52:54:00:${[...randomBytes(3)].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;

const runtimeOf = (n: NicRecord & { ifname: string }): RuntimeInterface => ({
  mac: n.mac,
  ifname: n.ifname,
  ...(n.bridge ? { bridge: n.bridge } : {}),
  ...(n.network ? { network: n.network } : {}),
});

export async function hotplugNic(ctx: QemuContext, d: Domain, iface: InterfaceModel, opts: OperationOptions): Promise<RuntimeInterface> {
  if (opts.signal?.aborted) throw abortReason(opts.signal, `attaching an interface to domain '${d.rec.name}'`);
  if ((await queryStatus(ctx, d)) === 'shutdown') throw notRunning();
  const mac = (iface.mac ?? randomMac()).toLowerCase();
  const have = d.rec.nics.find((n) => n.mac === mac);
  if (have) {
    if (have.unplugging) {
      throw new VirtError('operation-invalid', `Requested operation is not valid: interface ${mac} is being detached`);
    }
    if (!have.ifname) {
      throw new VirtError('operation-invalid', `Requested operation is not valid: MAC address ${mac} is already in use`);
    }
    return runtimeOf({ ...have, ifname: have.ifname });
  }
  if (iface.type !== 'network' && iface.type !== 'bridge' && iface.type !== 'ethernet') {
    throw new VirtError('operation-unsupported', `interface type '${iface.type}' cannot be hot-plugged by the qemu driver`);
  }
  // Hot-plugged NICs default to virtio: the guest needs no emulated-hardware driver for them.
  const model = iface.model ?? 'virtio';
  const driver = nicDriver(model);
  const nicDef: InterfaceModel = { ...iface, mac, model };
  const index = await nextNicIndex(ctx, d);
  // Validated before a tap exists, so a refusal leaves nothing behind.
  const device = nicDevice(nicDef, driver, index, mac);

  let plugged: { ifname: string; bridge?: string; network?: string };
  if (ctx.opts.plugInterface) {
    opts.progress?.('preparing the network device');
    plugged = await ctx.opts.plugInterface(d.uuid, nicDef);
  } else if (iface.type === 'ethernet' && iface.targetDev && !iface.targetDev.includes('%')) {
    plugged = { ifname: iface.targetDev };
  } else {
    throw new VirtError('operation-failed', `no tap device can be prepared for interface ${mac} (type ${iface.type})`);
  }
  const nic: NicRecord = {
    mac,
    index,
    ifname: plugged.ifname,
    ...(plugged.bridge ? { bridge: plugged.bridge } : {}),
    ...(plugged.network ? { network: plugged.network } : {}),
    hotplugged: true,
  };
  // Recorded before qemu has it: a driver that dies in between still releases the tap later.
  d.rec.nics.push(nic);
  if (!d.rec.ifnames.includes(plugged.ifname)) d.rec.ifnames.push(plugged.ifname);
  await persist(ctx, d);
  const qmp = await monitor(ctx, d);
  try {
    opts.progress?.(`adding ${driver} net${index} on ${plugged.ifname}`);
    await qmp.execute('netdev_add', tapNetdev(nicDef, driver, { tap: plugged.ifname }, `hostnet${index}`));
    try {
      await qmp.execute('device_add', device);
    } catch (e) {
      await qmp.execute('netdev_del', { id: `hostnet${index}` }).catch(() => undefined);
      throw e;
    }
  } catch (e) {
    d.rec.nics = d.rec.nics.filter((n) => n !== nic);
    d.rec.ifnames = d.rec.ifnames.filter((x) => x !== plugged.ifname);
    await persist(ctx, d);
    await ctx.opts.releaseInterfaces?.(d.uuid, [plugged.ifname]).catch(() => undefined);
    throw e;
  }
  return runtimeOf({ ...nic, ifname: plugged.ifname });
}

/** One above the highest index in use, as libvirt numbers hot-plugged NICs. */
async function nextNicIndex(ctx: QemuContext, d: Domain): Promise<number> {
  const used = d.rec.nics.map((n) => n.index);
  // Devices the record does not know (added by hand through the monitor) must not clash either.
  const children = await (await monitor(ctx, d))
    .execute<Array<{ name: string }>>('qom-list', { path: '/machine/peripheral' })
    .catch(() => []);
  for (const c of children) {
    const m = /^net(\d+)$/.exec(c.name);
    if (m) used.push(Number(m[1]));
  }
  return used.length ? Math.max(...used) + 1 : 0;
}

export async function unplugNic(ctx: QemuContext, d: Domain, mac: string, opts: OperationOptions): Promise<void> {
  const nic = d.rec.nics.find((n) => n.mac === mac);
  if (!nic) return;
  const qmp = await monitor(ctx, d);
  const id = `net${nic.index}`;
  const stopWaiting = new AbortController();
  const deleted = qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.device === id, {
    timeoutMs: Infinity,
    signal: stopWaiting.signal,
  });
  deleted.catch(() => undefined);
  let retry: NodeJS.Timeout | undefined;
  try {
    let gone = (await requestUnplug(qmp, id)) === 'gone';
    if (!nic.unplugging) {
      nic.unplugging = true;
      await persist(ctx, d);
    }
    if (!gone) {
      opts.progress?.(`waiting for the guest to release ${id}`);
      const deadline = opts.signal ? Infinity : (ctx.opts.unplugTimeoutMs ?? 30_000);
      const released = within(deleted, deadline, opts.signal, `detaching interface ${mac} from domain '${d.rec.name}'`);
      released.catch(() => undefined);
      while (!gone) {
        const tick = new Promise<'tick'>((r) => (retry = setTimeout(() => r('tick'), ctx.opts.unplugRetryMs ?? 5000)));
        if ((await Promise.race([released.then(() => 'released' as const), tick])) === 'released') break;
        // A guest drops eject requests that come before its OS has set up PCI hot-plug (early boot); ask again.
        gone = (await requestUnplug(qmp, id)) === 'gone';
      }
    }
  } finally {
    clearTimeout(retry);
    stopWaiting.abort();
  }
  await finishUnplug(ctx, d, nic);
}

async function requestUnplug(qmp: QmpClient, id: string): Promise<'sent' | 'gone'> {
  try {
    await qmp.execute('device_del', { id });
    return 'sent';
  } catch (e) {
    if (!(e instanceof QmpError)) throw e;
    // Released while no driver was watching.
    if (e.errorClass === 'DeviceNotFound') return 'gone';
    // An earlier request is still waiting on the guest.
    if (/already in the process of unplug/i.test(e.message)) return 'sent';
    throw e;
  }
}

/** The guest has let go of the NIC: drop its backend and give the tap back. Runs once per NIC. */
export async function finishUnplug(ctx: QemuContext, d: Domain, nic: NicRecord): Promise<void> {
  if (!d.alive || d.detached || !d.rec.nics.includes(nic)) return;
  const qmp = await monitor(ctx, d);
  await qmp.execute('netdev_del', { id: `hostnet${nic.index}` }).catch((e: unknown) => {
    if (!(e instanceof QmpError)) throw e;
    // Already gone: an earlier try got this far.
  });
  d.rec.nics = d.rec.nics.filter((n) => n !== nic);
  const ifname = nic.ifname;
  if (ifname) d.rec.ifnames = d.rec.ifnames.filter((x) => x !== ifname);
  await persist(ctx, d);
  if (ifname) await ctx.opts.releaseInterfaces?.(d.uuid, [ifname]).catch(() => undefined);
}

