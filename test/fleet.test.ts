import { afterEach, describe, expect, it } from 'vitest';
import { Fleet } from '../fleet/fleet.ts';
import { checkFleet } from '../fleet/verify.ts';
import { readLog } from './faults/log-audit.ts';

/**
 * The fleet simulator at a small size: twenty real host agents in this process, the command service
 * and the projector as processes, two hosts lost at once. Short lease timings keep it brief; they
 * pass the same start-up check as the defaults.
 */
const TIMINGS = { renewMs: 250, fenceMs: 1500, leaseTtlMs: 3000, leaseMarginMs: 1000 };

describe('fleet simulator', () => {
  let fleet: Fleet | undefined;
  afterEach(async () => {
    await fleet?.stop();
    fleet = undefined;
  });

  it('20 hosts, 200 domains, 2 hosts lost: each declared lost once, each of their HA guests running once elsewhere, nothing on two hosts', async () => {
    fleet = await Fleet.start({ hosts: 20, domains: 200, haShare: 0.2, runningShare: 0.3, timings: TIMINGS, concurrency: 32, agentLogLevel: 'silent', progress: () => {} });
    await fleet.define(0, 200);
    await fleet.startPlanned();
    const losses = await fleet.lose(2, 100, 60_000);

    expect(losses).toHaveLength(2);
    for (const l of losses) {
      // 10 domains per host: slots 4 and 9 are HA, 3 and 6 run without HA, the rest are shut off.
      expect(l.guests.length).toBe(2);
      expect(l.lostAt, `${l.hostId} declared lost`).toBeDefined();
      for (const g of l.guests) expect(g.on, `${g.name} restarted`).toBeDefined();
    }
    const check = await checkFleet(fleet, losses);
    expect(fleet.plan.filter((d) => d.hostId === losses[0]!.hostId && d.running && !d.ha)).toHaveLength(2);
    expect(check).toEqual({ notDeclaredLost: [], haNotRunningInViews: [], haNotRunningOnceOnDrivers: [], plainNotUnknown: [], shownRunningOnLostHost: [], onTwoHosts: [], viewDriverMismatch: [] });

    // Lists of one host (what each agent asks for its own guests) follow a domain to its new host.
    for (const l of losses) {
      const left = (await fleet.client.list({ all: true, host: l.hostId })).map((v) => v.name);
      for (const g of l.guests) {
        expect(left).not.toContain(g.name);
        expect((await fleet.client.list({ all: true, host: g.on! })).map((v) => v.name)).toContain(g.name);
      }
      expect(left.sort()).toEqual(fleet.plan.filter((d) => d.hostId === l.hostId && !d.ha).map((d) => d.name).sort());
    }

    // The log: HostLost once per lost host and for no other; each HA guest failed over once.
    const lostEvents = (await readLog(fleet.cp.admin, 'ev.host.>')).flatMap((c) => c.events.filter((e) => e.type === 'HostLost').map((e) => e.aggregateId));
    expect(lostEvents.sort()).toEqual(losses.map((l) => l.hostId).sort());
    const failovers = new Map<string, number>();
    for (const c of await readLog(fleet.cp.admin, 'ev.domain.>')) {
      for (const e of c.events) if (e.type === 'DomainFailedOver') failovers.set(e.aggregateId, (failovers.get(e.aggregateId) ?? 0) + 1);
    }
    const haIds = losses.flatMap((l) => l.guests.map((g) => g.domainId)).sort();
    expect([...failovers.keys()].sort()).toEqual(haIds);
    expect([...failovers.values()].every((n) => n === 1)).toBe(true);

    // The lost hosts' own drivers: fencing paused what they ran, nothing of theirs still runs.
    for (const l of losses) expect((await fleet.host(l.hostId).guests()).filter((g) => g.state === 'running')).toEqual([]);
  }, 180_000);
});
