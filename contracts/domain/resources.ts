import { z } from 'zod';
import type { DomainDefinition } from './definition.ts';
import { isActive } from './state.ts';
import { virtError } from '../errors.ts';
import { CommandHeader, DomainRef } from './commands.ts';
import type { DomainAggregate } from './decider.ts';

/**
 * virsh setmem, setmaxmem and setvcpus: a change of a domain's memory or vCPU counts, on the
 * persistent definition (--config), the running one (--live), or, with neither, whichever the
 * domain's state makes current, checked with libvirt's rules and messages before it is recorded.
 * The event names the change, not the resulting definition, so the live and persistent
 * definitions each apply it to themselves.
 */

export const ResourceChange = z.discriminatedUnion('kind', [
  /** virDomainSetMemoryFlags: the balloon's target, `<currentMemory>`. */
  z.object({ kind: z.literal('memory'), kib: z.number().int().positive() }),
  /** virDomainSetMemoryFlags(VIR_DOMAIN_MEM_MAXIMUM): `<memory>`. */
  z.object({ kind: z.literal('max-memory'), kib: z.number().int().positive() }),
  /** virDomainSetVcpusFlags: the vCPUs online (`current`), or with `maximum` the `<vcpu>` count. */
  z.object({ kind: z.literal('vcpus'), count: z.number().int().positive().max(16384), maximum: z.boolean().optional() }),
]);
export type ResourceChange = z.infer<typeof ResourceChange>;

export const SetResourcesRequest = CommandHeader.extend({
  domain: DomainRef,
  change: ResourceChange,
  live: z.boolean().optional(),
  config: z.boolean().optional(),
});
export type SetResourcesRequest = z.infer<typeof SetResourcesRequest>;

export const DomainResourcesSet = z.object({
  type: z.literal('DomainResourcesSet'),
  data: z.object({ change: ResourceChange, live: z.boolean(), config: z.boolean() }),
});

/** The vCPUs online: `<vcpu current>`, or all of them. */
export const currentVcpus = (d: DomainDefinition): number => d.vcpu?.current ?? d.vcpus;

/** `<currentMemory>`, or all of `<memory>`. */
export const currentMemory = (d: DomainDefinition): number => d.currentMemoryKiB ?? d.memoryKiB;

/** A definition with the change applied, keeping `<currentMemory>` and `<vcpu current>` within their maximum as libvirt does. */
export const applyResourceChange = (defined: DomainDefinition, c: ResourceChange): DomainDefinition => {
  // The stored document no longer says what the definition holds: dumpxml formats it from the model.
  const { xml: _xml, ...d } = defined;
  switch (c.kind) {
    case 'memory':
      return { ...d, currentMemoryKiB: c.kib };
    case 'max-memory':
      return { ...d, memoryKiB: c.kib, ...(currentMemory(d) > c.kib ? { currentMemoryKiB: c.kib } : {}) };
    case 'vcpus': {
      const vcpus = c.maximum ? c.count : d.vcpus;
      const current = c.maximum ? Math.min(currentVcpus(d), c.count) : c.count;
      const { current: _, ...vcpu } = d.vcpu ?? {};
      // libvirt drops `current` once it equals the maximum.
      return { ...d, vcpus, vcpu: current < vcpus ? { ...vcpu, current } : vcpu };
    }
  }
};

/** The checks of qemuDomainSetMemoryFlags and qemuDomainSetVcpusFlags (and the test driver's), in their order. */
export const decideResources = <E>(
  s: DomainAggregate,
  cmd: { change: ResourceChange; live: boolean; config: boolean },
  /**
   * Ask the host to change a running guest: its balloon's target, or its vCPUs online by hot-plug and
   * unplug (and, with `persistent`, the next boot's definition once it has).
   */
  host: { balloon: (memoryKiB: number, persistent: boolean) => E[]; hotplugVcpus: (vcpus: number, persistent: boolean) => E[] },
): Array<z.infer<typeof DomainResourcesSet> | E> => {
  const active = isActive(s.observed.state) || s.pending !== null;
  const live = cmd.live || (!cmd.config && active);
  const config = cmd.config || (!cmd.live && !active);
  if (live && !active) throw virtError('operation-invalid', 'domain is not running', { domain: s.name });
  if (config && !s.persistent) throw virtError('operation-invalid', 'cannot change persistent config of a transient domain', { domain: s.name });
  const liveDef = s.definition!;
  const configDef = s.nextDefinition ?? s.definition!;
  const c = cmd.change;
  const defs = [...(live ? [liveDef] : []), ...(config ? [configDef] : [])];
  switch (c.kind) {
    case 'memory':
      for (const d of defs) if (c.kib > d.memoryKiB) throw virtError('invalid-arg', 'cannot set memory higher than max memory');
      break;
    case 'max-memory':
      if (live) throw virtError('operation-invalid', 'cannot resize the maximum memory on an active domain');
      break;
    case 'vcpus':
      if (c.maximum && live) throw virtError('invalid-arg', 'cannot change the maximum vCPU count of a running domain');
      if (!c.maximum) for (const d of defs) if (c.count > d.vcpus) throw virtError('invalid-arg', `requested cpu amount exceeds maximum (${c.count} > ${d.vcpus})`);
      break;
  }
  if (live && s.definition?.type !== 'test') {
    // The test driver's guest is its definition; a real guest changes through its host (the balloon,
    // vCPU hot-plug), and the definitions change once it has.
    if (c.kind === 'memory') return host.balloon(c.kib, config);
    if (c.kind === 'vcpus') {
      if (currentVcpus(liveDef) === c.count) return [{ type: 'DomainResourcesSet', data: { change: c, live, config } }];
      return host.hotplugVcpus(c.count, config);
    }
    throw virtError('operation-unsupported', `changing the maximum memory of a running ${s.definition?.type} guest is not supported`);
  }
  return [{ type: 'DomainResourcesSet', data: { change: c, live, config } }];
};

/** What a finished set-memory or set-vcpus does to the definitions: the running one, and the next boot's when asked for too. */
export const resourceOpChange = (
  s: DomainAggregate,
  p: { op: string; memoryKiB?: number; vcpus?: number; persistent?: boolean },
): Partial<Pick<DomainAggregate, 'definition' | 'nextDefinition'>> => {
  const change: ResourceChange | null =
    p.op === 'set-memory' && p.memoryKiB !== undefined ? { kind: 'memory', kib: p.memoryKiB } : p.op === 'set-vcpus' && p.vcpus !== undefined ? { kind: 'vcpus', count: p.vcpus } : null;
  if (!change || !s.definition) return {};
  const definition = applyResourceChange(s.definition, change);
  const next = s.nextDefinition ?? s.definition;
  return { definition, nextDefinition: p.persistent ? applyResourceChange(next, change) : next };
};

/** The definitions after the change: the live one, the next boot's, or both. */
export const evolveResources = (s: DomainAggregate, data: z.infer<typeof DomainResourcesSet>['data']): Pick<DomainAggregate, 'definition' | 'nextDefinition'> => {
  if (!s.definition) return { definition: s.definition, nextDefinition: s.nextDefinition };
  const apply = (d: DomainDefinition) => applyResourceChange(d, data.change);
  const running = isActive(s.observed.state) || s.pending !== null;
  if (!running) return { definition: data.config ? apply(s.definition) : s.definition, nextDefinition: s.nextDefinition };
  // A live change leaves the next boot as it was; a config change waits for it.
  const next = s.nextDefinition ?? s.definition;
  return {
    definition: data.live ? apply(s.definition) : s.definition,
    nextDefinition: data.config ? apply(next) : data.live ? next : s.nextDefinition,
  };
};
