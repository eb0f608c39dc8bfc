import type { Envelope } from '../envelope.ts';
import { virtError } from '../errors.ts';
import type { HostCapabilities, HostCommand, HostEventBody, RegisterHostRequest } from './events.ts';

export interface HostAggregate {
  exists: boolean;
  hostId: string;
  hostname: string;
  instanceId: string;
  agentVersion: string;
  capabilities: HostCapabilities | null;
  registeredAt: string | null;
  version: number;
  /** Declared lost and not registered since. */
  lost?: boolean;
  lostAt?: string | null;
  /** The revision of the newest lease the log knows of: granted by a registration, or found expired. */
  leaseRevision?: number;
  /** In maintenance: no new domain is placed on it. */
  maintenance?: boolean;
  /** Removed by an operator: registrations are refused until it is enrolled again. */
  removed?: boolean;
}

export const initialHostState = (hostId: string): HostAggregate => ({
  exists: false,
  hostId,
  hostname: '',
  instanceId: '',
  agentVersion: '',
  capabilities: null,
  registeredAt: null,
  version: 0,
});

const sameRegistration = (s: HostAggregate, cmd: RegisterHostRequest) =>
  s.exists && s.instanceId === cmd.instanceId && JSON.stringify(s.capabilities) === JSON.stringify(cmd.capabilities);

/**
 * Every agent start is recorded (auditors want restarts), and so is every lease granted: a loss is
 * decided against the newest grant, so a grant must move the aggregate on. Only a repetition of one
 * grant to one process records nothing. A grant to a lost host records its return.
 */
export const decideRegister = (cmd: RegisterHostRequest & { leaseRevision?: number }, s: HostAggregate): HostEventBody[] => {
  requireNotRemoved(s);
  const revision = cmd.leaseRevision;
  const newGrant = revision !== undefined && revision !== (s.leaseRevision ?? 0);
  const out: HostEventBody[] = [];
  if (!sameRegistration(s, cmd) || newGrant) {
    out.push({
      type: 'HostRegistered',
      data: {
        hostname: cmd.hostname,
        instanceId: cmd.instanceId,
        agentVersion: cmd.agentVersion,
        capabilities: cmd.capabilities,
        ...(revision !== undefined ? { leaseRevision: revision } : {}),
      },
    });
  }
  if (s.lost) out.push({ type: 'HostReturned', data: { instanceId: cmd.instanceId, leaseRevision: revision ?? 0 } });
  return out;
};

/**
 * A lease found expired makes the host lost, once: not again while it is lost, and not for a lease
 * older than one a registration granted since (that grant may already have been renewed).
 */
export const decideHostLost = (cmd: Extract<HostCommand, { type: 'lost' }>, s: HostAggregate): HostEventBody[] => {
  if (!s.exists || s.removed || s.lost || cmd.leaseRevision < (s.leaseRevision ?? 0)) return [];
  return [{ type: 'HostLost', data: { leaseRevision: cmd.leaseRevision, leaseWrittenAt: cmd.leaseWrittenAt } }];
};

/** A removed host's credentials may still exist: it does not come back without an operator. */
export const requireNotRemoved = (s: HostAggregate): void => {
  if (s.removed) {
    throw virtError('unauthorized', `host '${s.hostId}' was removed; enroll it again (virtplane host-enroll ${s.hostId} --rotate) before it may register`, {
      hostId: s.hostId,
      removed: true,
    });
  }
};

/**
 * host-remove: only a host with no domains (evacuate it first; a lost one with --force, once it is
 * known off). It is in maintenance first, so nothing new is placed on it while it is looked at.
 */
export const decideRemove = (domains: number, s: HostAggregate): HostEventBody[] => {
  if (!s.exists) throw virtError('no-host', `no host with id '${s.hostId}' has registered`);
  if (s.removed) return [];
  if (domains > 0) {
    throw virtError(
      'operation-invalid',
      `host '${s.hostId}' still has ${domains} domain(s): run 'host-evacuate ${s.hostId}'${s.lost ? ' --force (it is lost: once it is known to be off)' : ''} first`,
      { hostId: s.hostId, domains },
    );
  }
  return [{ type: 'HostRemoved', data: { wasLost: s.lost ?? false } }];
};

/** Enrolled again: a removed host may register; any other host records nothing. */
export const decideReadmit = (s: HostAggregate): HostEventBody[] => (s.exists && s.removed ? [{ type: 'HostReadmitted', data: {} }] : []);

/** Maintenance on or off; asking for what holds already records nothing. */
export const decideMaintenance = (on: boolean, s: HostAggregate): HostEventBody[] => {
  if (!s.exists) throw virtError('no-host', `no host with id '${s.hostId}' has registered`);
  requireNotRemoved(s);
  return (s.maintenance ?? false) === on ? [] : [{ type: 'HostMaintenanceSet', data: { on } }];
};

export const decideHost = (cmd: HostCommand, s: HostAggregate): HostEventBody[] => {
  switch (cmd.type) {
    case 'register':
      return decideRegister(cmd, s);
    case 'lost':
      return decideHostLost(cmd, s);
    case 'maintenance':
      return decideMaintenance(cmd.on, s);
    case 'remove':
      return decideRemove(cmd.domains, s);
    case 'readmit':
      return decideReadmit(s);
  }
};

export const evolveHost = (s: HostAggregate, e: Envelope<HostEventBody>): HostAggregate => {
  switch (e.type) {
    case 'HostRegistered':
      return {
        ...s,
        exists: true,
        hostname: e.data.hostname,
        instanceId: e.data.instanceId,
        agentVersion: e.data.agentVersion,
        capabilities: e.data.capabilities,
        registeredAt: e.time,
        version: e.version,
        ...(e.data.leaseRevision !== undefined ? { leaseRevision: e.data.leaseRevision } : {}),
      };
    case 'HostLost':
      return { ...s, lost: true, lostAt: e.time, leaseRevision: Math.max(s.leaseRevision ?? 0, e.data.leaseRevision), version: e.version };
    case 'HostMaintenanceSet':
      return { ...s, maintenance: e.data.on, version: e.version };
    case 'HostRemoved':
      // Nothing of the host is kept in force: no lease, no loss to act on, no placement.
      return { ...s, removed: true, lost: false, lostAt: null, maintenance: true, version: e.version };
    case 'HostReadmitted':
      return { ...s, removed: false, version: e.version };
    case 'HostReturned':
      return { ...s, lost: false, lostAt: null, instanceId: e.data.instanceId, leaseRevision: e.data.leaseRevision, version: e.version };
    default:
      // A type this code does not know (written by a newer version, or by hand): the log is still
      // the truth, so the aggregate moves past it unchanged rather than stopping every reader on it.
      return { ...s, version: (e as Envelope<HostEventBody>).version };
  }
};
