import type { Subscription } from '@nats-io/transport-node';
import { DomainStatsRequest, NodeStatsRequest } from '../../contracts/domain/stats.ts';
import { virtError } from '../../contracts/errors.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { HypervisorDriver } from '../../drivers/hypervisor.ts';
import { nodeMemory } from '../../drivers/node-info.ts';
import { readImageHeader, resolveImagePath } from '../../drivers/save-image.ts';
import { SaveImageRequest } from '../../contracts/domain/save-restore.ts';
import { DomainCapsRequest } from '../../contracts/host/domain-caps.ts';
import { ALL_CPUS, DomainTimeRequest, MaxVcpusRequest, NodeCpuMapRequest, NodeCpuStatsRequest, SysinfoRequest, VcpuInfoRequest } from '../../contracts/host/host-reads.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';

/**
 * Answers operators' live readings of this host: a guest's counters (domstats and the monitoring
 * verbs), vCPUs (vcpuinfo) and clock (domtime), and the host's memory (nodememstats, freecell), CPU
 * times and map (nodecpustats, nodecpumap), vCPU limit (maxvcpus) and SMBIOS (sysinfo). The server
 * lets this host subscribe only to its own `hostread.<host>.*`, and the agent answers only about
 * guests its drivers run, so a host can neither read nor be asked about another's guests. Nothing here is recorded: these are
 * the hypervisor's numbers at the moment of asking, as virsh reads them.
 */
export const serveLiveReads = (n: Nats, hostId: string, driverFor: (type: string) => HypervisorDriver | undefined, log: Logger, saveDirs: readonly string[]): (() => void) => {
  /** The driver that speaks for the host as a whole: the hypervisor's when it runs one, else the test driver. */
  const hostDriver = () => driverFor('kvm') ?? driverFor('qemu') ?? driverFor('test');
  /** The driver of a guest whose definition the control plane sent, checked to be that guest's. */
  const guestDriver = (req: { domainId: string; definition: { uuid: string; type: string } }) => {
    if (req.definition.uuid !== req.domainId) throw virtError('invalid-arg', 'the definition is not that of the domain asked about');
    return driverFor(req.definition.type);
  };
  const unsupported = (api: string) => virtError('operation-unsupported', `this function is not supported by the connection driver: ${api}`, { raw: true });
  const subs: Subscription[] = [
    serve(
      n.nc,
      subjects.hostRead(hostId, 'domain-stats'),
      undefined,
      DomainStatsRequest,
      async (req) => {
        if (req.definition.uuid !== req.domainId) throw virtError('invalid-arg', 'the definition is not that of the domain asked about');
        const d = driverFor(req.definition.type);
        if (!d?.stats) throw virtError('operation-unsupported', `this function is not supported by the connection driver: virDomainGetStats (type '${req.definition.type}')`);
        return { stats: await d.stats(req.definition) };
      },
      log,
    ),
    serve(n.nc, subjects.hostRead(hostId, 'node-stats'), undefined, NodeStatsRequest, async () => ({ stats: await nodeMemory() }), log),
    // virsh domcapabilities: the hypervisor asked now; libvirt's test driver has none to give.
    serve(
      n.nc,
      subjects.hostRead(hostId, 'domain-caps'),
      undefined,
      DomainCapsRequest,
      async (req) => {
        const d = req.virttype ? driverFor(req.virttype) : hostDriver();
        if (!d?.domainCapabilities) throw unsupported('virConnectGetDomainCapabilities');
        return { xml: await d.domainCapabilities(req) };
      },
      log,
    ),
    // virsh vcpuinfo, domtime: a guest's vCPUs and clock now, from the driver that runs it.
    serve(
      n.nc,
      subjects.hostRead(hostId, 'vcpu-info'),
      undefined,
      VcpuInfoRequest,
      async (req) => {
        const d = guestDriver(req);
        if (!d?.vcpuInfo) throw unsupported('virDomainGetVcpus');
        const vcpus = await d.vcpuInfo(req.definition);
        // The maps are as wide as the host has CPUs, counted as its driver counts them.
        const mapper = d.nodeCpuMap ? d : hostDriver();
        const map = mapper?.nodeCpuMap ? await mapper.nodeCpuMap() : undefined;
        return { vcpus, hostCpus: map?.present ?? 0 };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.hostRead(hostId, 'domain-time'),
      undefined,
      DomainTimeRequest,
      async (req) => {
        const d = guestDriver(req);
        if (!d?.domainTime) throw unsupported('virDomainGetTime');
        return d.domainTime(req.definition);
      },
      log,
    ),
    // virsh maxvcpus, nodecpustats, nodecpumap, sysinfo: the host as its hypervisor driver sees it.
    serve(
      n.nc,
      subjects.hostRead(hostId, 'max-vcpus'),
      undefined,
      MaxVcpusRequest,
      async (req) => {
        const d = hostDriver();
        if (!d?.maxVcpus) throw unsupported('virConnectGetMaxVcpus');
        return { max: await d.maxVcpus(req.type) };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.hostRead(hostId, 'node-cpu-stats'),
      undefined,
      NodeCpuStatsRequest,
      async (req) => {
        const d = hostDriver();
        if (!d?.nodeCpuStats) throw unsupported('virNodeGetCPUStats');
        return { stats: await d.nodeCpuStats(req.cpu ?? ALL_CPUS) };
      },
      log,
    ),
    serve(
      n.nc,
      subjects.hostRead(hostId, 'node-cpu-map'),
      undefined,
      NodeCpuMapRequest,
      async () => {
        const d = hostDriver();
        if (!d?.nodeCpuMap) throw unsupported('virNodeGetCPUMap');
        return d.nodeCpuMap();
      },
      log,
    ),
    serve(
      n.nc,
      subjects.hostRead(hostId, 'sysinfo'),
      undefined,
      SysinfoRequest,
      async () => {
        const d = hostDriver();
        if (!d?.sysinfo) throw unsupported('virConnectGetSysinfo');
        return { xml: await d.sysinfo() };
      },
      log,
    ),
    // virsh save-image-dumpxml, and restore's look at what an image holds: only inside the image directories.
    serve(
      n.nc,
      subjects.hostRead(hostId, 'save-image'),
      undefined,
      SaveImageRequest,
      async (req) => {
        const { xml, running, format } = await readImageHeader(await resolveImagePath(saveDirs, req.file));
        return { xml, running, format };
      },
      log,
    ),
  ];
  return () => {
    for (const s of subs) s.unsubscribe();
  };
};
