import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { domainCapsXml, type DomainCapsRequest } from '../../contracts/host/domain-caps.ts';
import { VirtError } from '../../contracts/errors.ts';
import { connectWhenReady } from './qmp.ts';

interface MachineInfo {
  name: string;
  alias?: string;
  'is-default'?: boolean;
  'cpu-max': number;
}
interface CpuDefinition {
  name: string;
  'unavailable-features'?: string[];
  deprecated?: boolean;
}
interface Probe {
  machines: MachineInfo[];
  cpus: CpuDefinition[];
}

/**
 * Asks a qemu binary what it offers, as libvirt probes it: started with no machine, only its
 * monitor, then query-machines and query-cpu-definitions (with the accelerator the domain type
 * means, so a CPU model's usability is this host's). One probe per binary and accelerator.
 */
const probe = async (binary: string, accel: 'kvm' | 'tcg'): Promise<Probe> => {
  const dir = await mkdtemp(join(tmpdir(), 'virtplane-caps-'));
  const sock = join(dir, 'qmp.sock');
  const child = spawn(binary, ['-S', '-nodefaults', '-nographic', '-machine', `none,accel=${accel}`, '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
  let exited = false;
  child.once('exit', () => (exited = true));
  try {
    const qmp = await connectWhenReady(sock, { timeoutMs: 20_000, alive: () => !exited });
    try {
      const machines = await qmp.execute<MachineInfo[]>('query-machines');
      const cpus = await qmp.execute<CpuDefinition[]>('query-cpu-definitions');
      return { machines, cpus };
    } finally {
      await qmp.execute('quit').catch(() => undefined);
      await qmp.close().catch(() => undefined);
    }
  } finally {
    if (!exited) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
};

const probes = new Map<string, Promise<Probe>>();
const probed = (binary: string, accel: 'kvm' | 'tcg'): Promise<Probe> => {
  const key = `${binary}\0${accel}`;
  let p = probes.get(key);
  if (!p) {
    p = probe(binary, accel);
    // A failed probe is asked again next time.
    p.catch(() => probes.delete(key));
    probes.set(key, p);
  }
  return p;
};

/**
 * virsh domcapabilities on a QEMU host: for `kvm` only where KVM runs guests; the machine by its
 * canonical name (the default one when none is asked for); libvirt's errors for what it cannot give.
 */
export const qemuDomainCaps = async (binary: string, kvm: boolean, req: DomainCapsRequest): Promise<string> => {
  const domain = req.virttype ?? (kvm ? 'kvm' : 'qemu');
  if (domain !== 'kvm' && domain !== 'qemu') throw new VirtError('invalid-arg', `unknown virttype: ${domain}`);
  if (domain === 'kvm' && !kvm) throw new VirtError('config-unsupported', 'KVM is not supported by \'' + binary + "' on this host");
  const arch = req.arch ?? 'x86_64';
  if (arch !== 'x86_64') throw new VirtError('config-unsupported', `Emulator '${binary}' does not support arch '${arch}'`);
  if (req.emulatorbin !== undefined && req.emulatorbin !== binary) {
    throw new VirtError('invalid-arg', `emulator '${req.emulatorbin}' is not the one this host runs ('${binary}')`);
  }
  const p = await probed(binary, domain === 'kvm' ? 'kvm' : 'tcg');
  const wanted = req.machine ?? p.machines.find((m) => m['is-default'])?.name ?? 'pc';
  const machine = p.machines.find((m) => m.name === wanted || m.alias === wanted);
  if (!machine) throw new VirtError('config-unsupported', `the machine '${wanted}' is not supported by emulator '${binary}'`);
  return domainCapsXml({
    path: binary,
    domain,
    machine: machine.name,
    arch,
    maxVcpus: machine['cpu-max'],
    cpuModels: p.cpus
      .filter((c) => !c.deprecated && c.name !== 'host' && c.name !== 'max' && c.name !== 'base')
      .map((c) => ({ name: c.name, usable: (c['unavailable-features'] ?? []).length === 0 }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    hostCpu: domain === 'kvm',
  });
};
