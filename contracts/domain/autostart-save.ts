import type { DomainCommand } from './commands.ts';
import type { DomainAggregate } from './decider.ts';
import type { DomainEventBody } from './events.ts';
import { isActive } from './state.ts';
import { virtError } from '../errors.ts';
import type { Envelope } from '../envelope.ts';

/**
 * The domain decider's section for two persistent flags: autostart (virsh autostart) and the managed
 * save image (virsh managedsave / managedsave-remove). Saving itself is a host operation decided with
 * the others; what is here is what only the control plane keeps: whether the flags are set, and when
 * a start is owed to an autostart domain.
 */

export type FlagCommand = Extract<DomainCommand, { type: 'set-autostart' | 'managedsave-remove' | 'autostart-boot' }>;

/** libvirt's check before undefining a domain that has a saved state (virsh's own words). */
export const MANAGED_SAVE_BLOCKS_UNDEFINE = 'Refusing to undefine while domain managed save image exists';

/**
 * `start` asks for the domain's start as any start is asked for, so an autostart obeys the same
 * rules (one operation at a time, deadlines) as an operator's.
 */
export const decideFlags = (cmd: FlagCommand, s: DomainAggregate, onTest: boolean, start: () => DomainEventBody[]): DomainEventBody[] => {
  switch (cmd.type) {
    case 'set-autostart':
      // The test driver keeps the flag on a transient domain too; the QEMU driver refuses it there.
      if (!onTest && !s.persistent) throw virtError('operation-invalid', 'cannot set autostart for transient domain', { domain: s.name });
      return (s.autostart ?? false) === cmd.autostart ? [] : [{ type: 'DomainAutostartSet', data: { autostart: cmd.autostart } }];
    case 'managedsave-remove':
      // Nothing saved is nothing to remove (virsh says so and succeeds).
      return s.managedSave ? [{ type: 'DomainManagedSaveRemoved', data: {} }] : [];
    case 'autostart-boot':
      // libvirt starts, when its daemon starts, the autostart domains that are not running: only a
      // domain this host owns, known shut off and with nothing in flight, is started by its agent.
      if (!s.exists || !s.persistent || !s.autostart || s.hostId !== cmd.hostId || s.hostLost || s.pending || isActive(s.observed.state)) return [];
      return start();
  }
};

/** managedsave: both drivers check the same two things, in opposite orders (testDomainManagedSave, qemuDomainManagedSave). */
export const checkManagedSave = (s: DomainAggregate, onTest: boolean): void => {
  const transient = () => {
    if (!s.persistent) throw virtError('operation-invalid', 'cannot do managed save for transient domain', { domain: s.name });
  };
  if (!onTest) transient();
  if (!isActive(s.observed.state)) throw virtError('operation-invalid', 'domain is not running', { domain: s.name });
  transient();
};

/** undefine: a saved state blocks it, unless the caller asks for the image to go too. */
export const undefineSaveEvents = (s: DomainAggregate, removeImage: boolean): DomainEventBody[] => {
  if (!s.managedSave) return [];
  if (!removeImage) throw virtError('operation-invalid', MANAGED_SAVE_BLOCKS_UNDEFINE, { domain: s.name });
  return [{ type: 'DomainManagedSaveRemoved', data: {} }];
};

/**
 * The flags after one event. A finished managed save leaves an image; a guest that runs again has
 * started from it (or past it), so it is gone; a domain defined anew starts with neither flag.
 */
export const evolveFlags = (before: DomainAggregate, after: DomainAggregate, e: Envelope<DomainEventBody>): DomainAggregate => {
  const set = (autostart: boolean | undefined, managedSave: boolean | undefined): DomainAggregate => {
    const { autostart: _a, managedSave: _m, ...rest } = after;
    return { ...rest, ...(autostart ? { autostart: true } : {}), ...(managedSave ? { managedSave: true } : {}) };
  };
  let autostart = before.exists ? before.autostart : undefined;
  let managedSave = before.exists ? before.managedSave : undefined;
  switch (e.type) {
    case 'DomainAutostartSet':
      autostart = e.data.autostart;
      break;
    case 'DomainManagedSaveRemoved':
      managedSave = false;
      break;
    case 'DomainOperationCompleted':
      if (e.data.op === 'managedsave' && before.pending?.taskId === e.data.taskId && !isActive(e.data.observed.state)) managedSave = true;
      break;
  }
  if (isActive(after.observed.state)) managedSave = false;
  if (!after.exists) return set(undefined, undefined);
  return set(autostart, managedSave);
};
