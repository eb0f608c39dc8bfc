import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { VirtError } from '../../contracts/errors.ts';
import type { QmpClient } from './qmp.ts';

/** One entry of `query-hotpluggable-cpus`: a slot, filled when it has a QOM path. */
interface CpuSlot {
  type: string;
  'vcpus-count': number;
  props: { 'socket-id'?: number; 'die-id'?: number; 'core-id'?: number; 'thread-id'?: number; 'node-id'?: number };
  'qom-path'?: string;
}

/** Where qemu puts devices added with an id: only those can be taken out again. */
const PLUGGED = '/machine/peripheral/vcpu';

const order = (s: CpuSlot): number[] => [s.props['socket-id'] ?? 0, s.props['die-id'] ?? 0, s.props['core-id'] ?? 0, s.props['thread-id'] ?? 0];
const byTopology = (a: CpuSlot, b: CpuSlot): number => {
  const x = order(a);
  const y = order(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
};

/**
 * qemu 7.2 under TCG dies (SIGSEGV) on the first vCPU plugged after one was unplugged, into any slot;
 * a bare qemu does it too (device_add, device_del, device_add). So, under TCG, a file in the guest's
 * directory is written before the first unplug (it goes when the guest stops), and while it is there
 * no vCPU is plugged: refused, not crashed.
 */
export const VCPU_UNPLUGGED = 'vcpu-unplugged';

/**
 * virsh setvcpus --live on a qemu guest: plugs vCPUs into the lowest free slots, or unplugs the
 * highest ones added while it ran, until `count` are present. It compares what qemu has with what
 * is asked each time, so a run cut short (an agent killed half-way) is finished by the next one and
 * never plugs a vCPU twice. As in libvirt, the vCPUs the guest booted with cannot be unplugged.
 * An unplug completes when the guest's OS lets go of the CPU (DEVICE_DELETED), which `signal` bounds.
 * `unplugged` (TCG only) is that file's path.
 */
export async function setOnlineVcpus(qmp: QmpClient, count: number, signal?: AbortSignal, unplugged?: string): Promise<number> {
  const slots = (await qmp.execute<CpuSlot[]>('query-hotpluggable-cpus')).sort(byTopology);
  const present = slots.filter((s) => s['qom-path']);
  const online = present.reduce((n, s) => n + s['vcpus-count'], 0);
  const max = slots.reduce((n, s) => n + s['vcpus-count'], 0);
  if (count > max) {
    throw new VirtError('invalid-arg', `requested vcpus is greater than max allowable vcpus for the live domain: ${count} > ${max}`);
  }
  if (count > online) {
    if (unplugged !== undefined && existsSync(unplugged)) {
      // Refused before anything is plugged.
      throw new VirtError(
        'config-unsupported',
        `qemu with TCG cannot plug a vCPU into a guest that had one unplugged while it runs: at most ${online} vCPUs until the guest restarts`,
      );
    }
    let have = online;
    for (const [i, s] of slots.entries()) {
      if (have >= count) break;
      if (s['qom-path']) continue;
      await qmp.execute('device_add', { driver: s.type, id: `vcpu${i}`, ...s.props });
      have += s['vcpus-count'];
    }
    return have;
  }
  let have = online;
  const removable = present.filter((s) => s['qom-path']!.startsWith(PLUGGED)).reverse();
  for (const s of removable) {
    if (have <= count) break;
    const path = s['qom-path']!;
    if (unplugged !== undefined) await writeFile(unplugged, '');
    await qmp.execute('device_del', { id: path.slice('/machine/peripheral/'.length) });
    await released(qmp, path, signal);
    have -= s['vcpus-count'];
  }
  if (have > count) {
    throw new VirtError('operation-unsupported', `unsupported configuration: vCPU '${have - 1}' is not hotpluggable: only vCPUs added while the guest runs can be unplugged`);
  }
  return have;
}

/**
 * Resolves once the slot holding `path` is empty. qemu 7.2 announces a vCPU's removal only through
 * its children (DEVICE_DELETED names `<path>/lapic`) and ACPI_DEVICE_OST, so the slots themselves
 * are asked, again after each event and every second.
 */
async function released(qmp: QmpClient, path: string, signal?: AbortSignal): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    const slots = await qmp.execute<CpuSlot[]>('query-hotpluggable-cpus');
    if (!slots.some((s) => s['qom-path'] === path)) return;
    if (signal?.aborted) throw signal.reason;
    if (Date.now() > until) throw new VirtError('timeout', `the guest did not release vCPU ${path.split('/').at(-1)} within 60 s`);
    await qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' || e.event === 'ACPI_DEVICE_OST', { timeoutMs: 1000, ...(signal ? { signal } : {}) }).catch(() => undefined);
  }
}
