import type { DomainDefinition, InterfaceModel } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import type { DomainEventBody } from './events.ts';
import { isActive } from './state.ts';
import { virtError } from '../errors.ts';
import { formatDomainXml } from '../xml/domain.ts';
import type { DomainAggregate, PendingOperation } from './aggregate.ts';
import { decideOperation, notRunning } from './operations.ts';

/**
 * The domain decider's section for virsh attach-interface and detach-interface: what is asked of the
 * host or recorded as a new definition, and what a finished live change does to the definitions.
 */

const macOf = (i: InterfaceModel) => i.mac?.toLowerCase();

/** The definition with one interface added or taken out; a stored document is written anew, as dumpxml shows it. */
const withInterface = (def: DomainDefinition, add?: InterfaceModel, removeMac?: string): DomainDefinition => {
  const next = {
    ...def,
    devices: {
      ...def.devices,
      interfaces: [...def.devices.interfaces.filter((i) => !removeMac || macOf(i) !== removeMac), ...(add ? [add] : [])],
    },
  };
  return def.xml ? { ...next, xml: formatDomainXml(next) } : next;
};

/**
 * virsh attach-interface / detach-interface: live changes go to the host as an operation; config
 * changes are a new definition. Neither flag means "live" on a running domain and "config" on a shut
 * off one (virsh's --current).
 */
export const decideInterface = (
  cmd: Extract<DomainCommand, { type: 'attach-interface' | 'detach-interface' }>,
  s: DomainAggregate,
  now: Date,
): DomainEventBody[] => {
  const running = isActive(s.observed.state) || s.pending?.op === 'start';
  const live = cmd.live || (!cmd.config && running);
  const config = cmd.config;
  if (live && !isActive(s.observed.state)) throw notRunning(s);
  const def = s.nextDefinition ?? s.definition!;
  const known = [...s.definition!.devices.interfaces, ...def.devices.interfaces];
  if (cmd.type === 'attach-interface') {
    const mac = macOf(cmd.iface);
    if (mac && known.some((i) => macOf(i) === mac)) {
      throw virtError('operation-failed', `domain '${s.name}' already has an interface with MAC address ${mac}`);
    }
  } else if (!known.some((i) => macOf(i) === cmd.mac) && !s.interfaces.some((i) => i.mac === cmd.mac)) {
    throw virtError('operation-failed', `domain '${s.name}' has no interface with MAC address ${cmd.mac}`);
  }
  if (live) {
    return decideOperation(cmd.type, s, now, cmd.timeoutMs, {
      ...(cmd.type === 'attach-interface' ? { iface: cmd.iface } : { mac: cmd.mac }),
      persistent: config,
    });
  }
  const next = cmd.type === 'attach-interface' ? withInterface(def, cmd.iface) : withInterface(def, undefined, cmd.mac);
  return [{ type: 'DomainDefined', data: { definition: next, hostId: s.hostId, placementEpoch: s.placementEpoch, added: false } }];
};

/**
 * What a finished live interface change does to the definitions: the running one always changes; the
 * next boot's changes only when the change was also asked for the config.
 */
export const interfaceChange = (s: DomainAggregate, p: PendingOperation): Partial<DomainAggregate> => {
  if ((p.op !== 'attach-interface' && p.op !== 'detach-interface') || !s.definition) return {};
  const change = (d: DomainDefinition) => (p.op === 'attach-interface' ? withInterface(d, p.iface) : withInterface(d, undefined, p.mac));
  const definition = change(s.definition);
  if (p.persistent) return { definition, nextDefinition: s.nextDefinition ? change(s.nextDefinition) : null };
  // A live-only change leaves the next boot as it was.
  return { definition, nextDefinition: s.nextDefinition ?? s.definition };
};
