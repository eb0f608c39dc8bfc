import type { DomainView } from '../contracts/views.ts';
import type { Fleet, Loss } from './fleet.ts';

/** What the views and the hosts' own drivers say after losses; every list empty means all is well. */
export interface FleetCheck {
  /** Lost hosts the control plane never declared lost. */
  notDeclaredLost: string[];
  /** HA guests of lost hosts that the views do not show running on another, live host. */
  haNotRunningInViews: string[];
  /** HA guests of lost hosts not running on exactly one live host's driver. */
  haNotRunningOnceOnDrivers: string[];
  /** Non-HA domains that ran on lost hosts and that the views do not show as unknown (host lost). */
  plainNotUnknown: string[];
  /** Domains the views show running on a lost host. */
  shownRunningOnLostHost: string[];
  /** Guests running on two hosts at once, by the drivers. */
  onTwoHosts: string[];
  /** Views and drivers disagree on where a running domain runs (live hosts only). */
  viewDriverMismatch: string[];
}

export const checkFleet = async (fleet: Fleet, losses: Loss[]): Promise<FleetCheck> => {
  const views = new Map<string, DomainView>();
  for await (const page of fleet.client.listPages({ all: true, pageSize: 1000 })) for (const v of page) views.set(v.id, v);
  const runningOn = new Map<string, string[]>();
  for (const h of fleet.hosts) {
    for (const g of await h.guests()) {
      if (g.state !== 'running') continue;
      runningOn.set(g.uuid, [...(runningOn.get(g.uuid) ?? []), h.hostId]);
    }
  }
  const lostHosts = new Set(losses.map((l) => l.hostId));
  const check: FleetCheck = { notDeclaredLost: [], haNotRunningInViews: [], haNotRunningOnceOnDrivers: [], plainNotUnknown: [], shownRunningOnLostHost: [], onTwoHosts: [], viewDriverMismatch: [] };
  const hostViews = new Map((await fleet.client.hosts({ pageSize: 1000 })).map((h) => [h.hostId, h]));
  for (const l of losses) {
    if (!hostViews.get(l.hostId)?.lost) check.notDeclaredLost.push(l.hostId);
    const ha = new Set(l.guests.map((g) => g.domainId));
    for (const g of l.guests) {
      const v = views.get(g.domainId);
      if (!v || v.hostLost || lostHosts.has(v.hostId) || v.observed.state !== 'running') check.haNotRunningInViews.push(g.name);
      const on = runningOn.get(g.domainId) ?? [];
      if (on.length !== 1 || lostHosts.has(on[0]!)) check.haNotRunningOnceOnDrivers.push(g.name);
    }
    // A shut off domain of a lost host is known to be off: only those that may run become unknown.
    for (const d of fleet.plan) {
      if (d.hostId !== l.hostId || !d.running || d.ha) continue;
      const v = views.get(fleet.ids.get(d.name) ?? '');
      if (!v || v.hostLost !== true || v.observed.state !== 'nostate') check.plainNotUnknown.push(d.name);
    }
    for (const v of views.values()) if (v.hostId === l.hostId && v.observed.state === 'running') check.shownRunningOnLostHost.push(v.name);
  }
  for (const [uuid, on] of runningOn) {
    if (on.length > 1) check.onTwoHosts.push(uuid);
    const v = views.get(uuid);
    const live = on.filter((h) => !lostHosts.has(h));
    if (live.length === 1 && (!v || v.hostId !== live[0] || v.observed.state !== 'running')) check.viewDriverMismatch.push(uuid);
  }
  return check;
};

export const checkPassed = (c: FleetCheck): boolean => Object.values(c).every((xs: string[]) => xs.length === 0);
