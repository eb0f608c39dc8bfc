import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtplaneClient } from '../../client/index.ts';
import type { LifecycleEvent } from '../../contracts/lifecycle.ts';
import { startSecuredNats, startSecuredServices, type SecuredNats } from '../fixtures/secured.ts';

/**
 * The legitimate flows on a server running the generated permissions: every service, agent and
 * operator does its whole job, and the server refuses nothing any of them asks.
 */
describe('legitimate flows under least privilege', () => {
  let s: SecuredNats;
  let services: Awaited<ReturnType<typeof startSecuredServices>>;
  let dataDir: string;
  beforeAll(async () => {
    s = await startSecuredNats({ hosts: ['host-a'], principals: [['alice', 'operator'], ['audrey', 'auditor']] });
    dataDir = await mkdtemp(join(tmpdir(), 'virtplane-secured-'));
    services = await startSecuredServices(s, { hostId: 'host-a', dataDir });
  }, 60_000);
  afterAll(async () => {
    await services?.stop();
    await s?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('an operator defines, starts and destroys a domain and follows it on the lifecycle feed', async () => {
    const alice = VirtplaneClient.over(await s.as('alice'), { actor: 'alice-laptop' });
    const def = await alice.define({ definition: { name: 'sec-1', memoryKiB: 131072, vcpus: 1 } });
    const events: LifecycleEvent[] = [];
    const ac = new AbortController();
    const feed = (async () => {
      for await (const e of alice.lifecycle({ domainId: def.domainId, from: 'all', signal: ac.signal })) events.push(e);
    })();
    expect((await alice.outcome(await alice.start('sec-1'), 20_000)).observed.state).toBe('running');
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
    const audrey = VirtplaneClient.over(await s.as('audrey'));
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

  it("an operator asks a guest's host for its console and gets the host's answer", async () => {
    const alice = VirtplaneClient.over(await s.as('alice'));
    await alice.define({ definition: { name: 'sec-2', memoryKiB: 131072, vcpus: 1 } });
    const v = await alice.outcome(await alice.start('sec-2'), 20_000);
    // A test-driver guest has no console: the refusal travelled host to operator under the permissions.
    await expect(alice.console(v, { onData: () => undefined })).rejects.toMatchObject({ code: 'operation-unsupported' });
    await alice.outcome(await alice.destroy('sec-2'), 20_000);
  }, 30_000);

  it('the server refused nothing along the way', () => {
    expect(s.violations()).toEqual([]);
  });
});
