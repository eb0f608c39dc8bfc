import { describe, expect, it } from 'vitest';
import { VirtplaneClient } from '../../client/index.ts';
import type { LifecycleEvent } from '../../contracts/lifecycle.ts';
import { startSecuredServices, useSecuredStack } from '../fixtures/secured.ts';

/**
 * The legitimate flows on a server running the generated permissions: every service, agent and
 * operator does its whole job, and the server refuses nothing any of them asks.
 */
describe('legitimate flows under least privilege', () => {
  const stack = useSecuredStack({ hosts: ['host-a'], principals: [['alice', 'operator'], ['audrey', 'auditor']], hostId: 'host-a' });

  it('an operator defines, starts and destroys a domain and follows it on the lifecycle feed', async () => {
    const alice = VirtplaneClient.over(await stack.s.as('alice'), { actor: 'alice-laptop' });
    const def = await alice.define({ definition: { name: 'sec-1', memoryKiB: 131072, vcpus: 1 } });
    const events: LifecycleEvent[] = [];
    const ac = new AbortController();
    const feed = (async () => {
      for await (const e of alice.lifecycle({ domainId: def.domainId, from: 'all', signal: ac.signal })) events.push(e);
    })();
    expect((await alice.outcome(await alice.start('sec-1'), 20_000)).observed.state).toBe('running');
    // Live readings, asked of the host agent under the operator's permissions.
    expect((await alice.domainStats('sec-1')).stats.groups).toEqual(['state']);
    expect((await alice.nodeStats('host-a')).memory?.totalKiB).toBeGreaterThan(0);
    expect((await alice.outcome(await alice.destroy('sec-1'), 20_000)).observed.state).toBe('shutoff');
    const end = Date.now() + 10_000;
    while (events.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
    ac.abort();
    await feed;
    expect(events.map((e) => e.event)).toEqual(['DEFINED', 'STARTED', 'STOPPED']);
    // The operator's own commands carry its proven name; the host's reports name the host.
    expect(events.map((e) => e.actor)).toEqual(['alice', 'host:host-a', 'host:host-a']);
    const hosts = await alice.hosts();
    expect(hosts.map((h) => h.hostId)).toEqual(['host-a']);
  }, 60_000);

  it('an auditor reads views and the feed', async () => {
    const audrey = VirtplaneClient.over(await stack.s.as('audrey'));
    const list = await audrey.list({ all: true });
    expect(list.map((d) => d.name)).toContain('sec-1');
    const ac = new AbortController();
    const seen: LifecycleEvent[] = [];
    const feed = (async () => {
      for await (const e of audrey.lifecycle({ from: 'all', signal: ac.signal })) seen.push(e);
    })();
    const end = Date.now() + 10_000;
    while (seen.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
    ac.abort();
    await feed;
    expect(seen.length).toBeGreaterThanOrEqual(3);
  }, 30_000);

  it("an operator marks a domain autostart, resets and saves it, and the returning agent starts it, each within its permissions", async () => {
    const alice = VirtplaneClient.over(await stack.s.as('alice'), { actor: 'alice-laptop' });
    await alice.define({ definition: { name: 'sec-2', memoryKiB: 65536, vcpus: 1 } });
    await alice.autostart('sec-2');
    await alice.outcome(await alice.start('sec-2'), 20_000);
    expect((await alice.outcome(await alice.reset('sec-2'), 20_000)).observed.state).toBe('running');
    const saved = await alice.outcome(await alice.managedSave('sec-2'), 20_000);
    expect([saved.observed, saved.managedSave, saved.autostart]).toEqual([{ state: 'shutoff', reason: 'saved' }, true, true]);
    await alice.managedSaveRemove('sec-2');
    expect((await alice.get('sec-2')).managedSave).toBeUndefined();
    // The agent goes and comes back: its report asking for the autostart is its own to send.
    const agent = stack.services.procs.length - 1;
    await stack.services.procs[agent]!.stop('SIGTERM');
    const again = await startSecuredServices(stack.s, { hostId: 'host-a', dataDir: stack.dataDir, names: ['host-agent'] });
    stack.services.procs.splice(agent, 1, ...again.procs);
    const end = Date.now() + 20_000;
    let v = await alice.get('sec-2');
    while (v.observed.state !== 'running' && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      v = await alice.get('sec-2');
    }
    expect(v.observed).toEqual({ state: 'running', reason: 'booted' });
  }, 60_000);

  it('an operator takes, reverts to and deletes a snapshot, and the host reports each within its permissions', async () => {
    const alice = VirtplaneClient.over(await stack.s.as('alice'), { actor: 'alice-laptop' });
    await alice.define({ definition: { name: 'sec-4', memoryKiB: 65536, vcpus: 1 } });
    await alice.outcome(await alice.start('sec-4'), 20_000);
    expect((await alice.outcome(await alice.snapshotCreate('sec-4', { name: 'before' }), 20_000)).currentSnapshot).toBe('before');
    expect((await alice.outcome(await alice.snapshotRevert('sec-4', { name: 'before', paused: true }), 20_000)).observed).toEqual({ state: 'paused', reason: 'from-snapshot' });
    expect((await alice.outcome(await alice.snapshotDelete('sec-4', { name: 'before' }), 20_000)).snapshots).toBeUndefined();
    // The auditor reads the tree but takes no snapshot.
    const audrey = VirtplaneClient.over(await stack.s.as('audrey'));
    expect((await audrey.get('sec-4')).name).toBe('sec-4');
  }, 30_000);

  it("an operator asks a guest's host for its console and gets the host's answer", async () => {
    const alice = VirtplaneClient.over(await stack.s.as('alice'));
    await alice.define({ definition: { name: 'sec-3', memoryKiB: 131072, vcpus: 1 } });
    const v = await alice.outcome(await alice.start('sec-3'), 20_000);
    // A test-driver guest has no console: the refusal travelled host to operator under the permissions.
    await expect(alice.console(v, { onData: () => undefined })).rejects.toMatchObject({ code: 'operation-unsupported' });
    await alice.outcome(await alice.destroy('sec-3'), 20_000);
  }, 30_000);

  it('the server refused nothing along the way', () => {
    expect(stack.s.violations()).toEqual([]);
  });
});
