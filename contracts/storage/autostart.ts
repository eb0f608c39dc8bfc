import { virtError } from '../errors.ts';
import type { StorageCommand } from './commands.ts';
import type { PoolAggregate } from './decider.ts';
import type { StorageEventBody } from './events.ts';

/**
 * The pool's autostart flag (virsh pool-autostart) and the start it owes: libvirt starts a pool
 * marked autostart when its daemon starts; here the pool's host asks for it when its agent starts,
 * and the decision is taken against the log like any other start.
 */

export type PoolFlagCommand = Extract<StorageCommand, { type: 'set-autostart' | 'autostart-boot' }>;

export const decidePoolFlags = (cmd: PoolFlagCommand, s: PoolAggregate, persistent: boolean, start: () => StorageEventBody[]): StorageEventBody[] => {
  switch (cmd.type) {
    case 'set-autostart':
      // storagePoolSetAutostart: a pool with no config file (pool-create's transient one) has nothing to mark.
      if (!persistent) throw virtError('invalid-arg', 'invalid argument: pool has no config file');
      return (s.autostart ?? false) === cmd.autostart ? [] : [{ type: 'PoolAutostartSet', data: { autostart: cmd.autostart } }];
    case 'autostart-boot':
      // Only an inactive, idle, persistent autostart pool of the asking host: anything else is left
      // alone, so a second ask, one from an old agent instance, or a pool started meanwhile, start nothing.
      if (!s.exists || !persistent || !s.autostart || s.hostId !== cmd.hostId || s.active || s.pending) return [];
      return start();
  }
};

/** The flag after one event: set by its own event, gone with the definition. */
export const evolvePoolFlags = (before: PoolAggregate, after: PoolAggregate, type: StorageEventBody['type'], data: unknown): PoolAggregate => {
  const { autostart: _old, ...rest } = after;
  let autostart = before.exists ? before.autostart : undefined;
  if (type === 'PoolAutostartSet') autostart = (data as { autostart: boolean }).autostart;
  if (!after.exists || after.persistent === false) autostart = undefined;
  return autostart ? { ...rest, autostart: true } : rest;
};
