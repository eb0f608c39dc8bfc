import type { Subscription } from '@nats-io/transport-node';
import { DomainStatsRequest, NodeStatsRequest } from '../../contracts/domain/stats.ts';
import { virtError } from '../../contracts/errors.ts';
import { subjects } from '../../contracts/subjects.ts';
import type { HypervisorDriver } from '../../drivers/hypervisor.ts';
import { nodeMemory } from '../../drivers/node-info.ts';
import { readImageHeader, resolveImagePath } from '../../drivers/save-image.ts';
import { SaveImageRequest } from '../../contracts/domain/save-restore.ts';
import { DomainCapsRequest } from '../../contracts/host/domain-caps.ts';
import type { Logger } from '../../platform/log.ts';
import type { Nats } from '../../platform/nats.ts';
import { serve } from '../../platform/rpc.ts';

/**
 * Answers operators' live readings of this host: a guest's counters (domstats and the monitoring
 * verbs) and the host's memory (nodememstats, freecell). The server lets this host subscribe only
 * to its own `hostread.<host>.*`, and the agent answers only about guests its drivers run, so a
 * host can neither read nor be asked about another's guests. Nothing here is recorded: these are
 * the hypervisor's numbers at the moment of asking, as virsh reads them.
 */
export const serveLiveReads = (n: Nats, hostId: string, driverFor: (type: string) => HypervisorDriver | undefined, log: Logger, saveDirs: readonly string[]): (() => void) => {
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
        const d = req.virttype ? driverFor(req.virttype) : (driverFor('kvm') ?? driverFor('qemu') ?? driverFor('test'));
        if (!d?.domainCapabilities) throw virtError('operation-unsupported', 'this function is not supported by the connection driver: virConnectGetDomainCapabilities', { raw: true });
        return { xml: await d.domainCapabilities(req) };
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
