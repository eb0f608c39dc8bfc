import { cpus, totalmem } from 'node:os';
import { VirtError } from '../../contracts/errors.ts';
import type { DomainCapsRequest } from '../../contracts/host/domain-caps.ts';
import type { DriverCapabilities } from '../hypervisor.ts';
import { qemuDomainCaps } from './domain-caps.ts';
import { qemuAvailable } from './host.ts';
import type { QemuDriverOptions } from './options.ts';

type Accel = Pick<QemuDriverOptions, 'accel' | 'binary'>;

export async function capabilities(driver: string, opts: Accel): Promise<DriverCapabilities> {
  const avail = await qemuAvailable();
  const accel = opts.accel ?? 'auto';
  const kvmRuns = avail.kvm && accel !== 'tcg';
  return {
    driver,
    domainTypes: kvmRuns || accel === 'auto' ? ['kvm', 'qemu'] : ['qemu'],
    cpus: cpus().length,
    memoryKiB: Math.floor(totalmem() / 1024),
    features: {
      accel: kvmRuns ? 'kvm' : 'tcg',
      ...(avail.binary ? { binary: opts.binary ?? avail.binary } : {}),
      ...(avail.version ? { qemu: avail.version } : {}),
      ...(!avail.kvm && avail.reason ? { kvm: avail.reason } : {}),
    },
  };
}

/** virsh domcapabilities: the binary probed once per accelerator (domain-caps.ts). */
export async function domainCapabilities(opts: Accel, req: DomainCapsRequest): Promise<string> {
  const avail = await qemuAvailable();
  const binary = opts.binary ?? avail.binary;
  if (!binary) throw new VirtError('operation-unsupported', 'no qemu binary on this host');
  return qemuDomainCaps(binary, avail.kvm && (opts.accel ?? 'auto') !== 'tcg', req);
}

/**
 * virsh maxvcpus: the `<vcpu max>` of the domain capabilities, as virsh reads it first; a type
 * this driver does not run is libvirt's qemuConnectGetMaxVcpus error.
 */
export async function maxVcpus(opts: Accel, type?: string): Promise<number> {
  const t = type?.toLowerCase();
  if (t !== undefined && t !== 'qemu' && t !== 'kvm') throw new VirtError('invalid-arg', `unknown type '${type}'`);
  const xml = await domainCapabilities(opts, t ? { virttype: t } : {});
  const m = /<vcpu max='(\d+)'\/>/.exec(xml);
  if (!m) throw new VirtError('internal-error', 'the domain capabilities give no vCPU maximum');
  return Number(m[1]);
}
