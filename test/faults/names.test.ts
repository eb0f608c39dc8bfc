import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtplaneClient } from '../../client/index.ts';
import { decide } from '../../contracts/domain/decider.ts';
import { DomainDefinition } from '../../contracts/domain/definition.ts';
import { isVirtError } from '../../contracts/errors.ts';
import { EventStore } from '../../platform/event-store.ts';
import { connectNats, type Nats } from '../../platform/nats.ts';
import { domainKind } from '../../services/command/domain-kind.ts';
import { NameClaims } from '../../services/command/name-claims.ts';
import { Repository } from '../../services/command/repository.ts';
import { startStack, type Stack } from '../fixtures/stack.ts';
import { commitsBetween, foldNames, lastSeq } from '../fixtures/log.ts';

/**
 * Name uniqueness across two command-service replicas, under racing clients and a replica killed
 * between claim and define. The log itself is checked after every commit, and the views against it.
 */

// Long enough that a winner's define lands before any rival may fence it, even on a loaded machine.
const GRACE_MS = 5000;
const CLIENTS = 20;
const ROUNDS = 10;

const domainDef = (name: string, uuid?: string) => ({ name, memoryKiB: 65536, vcpus: 1, ...(uuid ? { uuid } : {}) });
const codeOf = (r: PromiseSettledResult<unknown>) => (r.status === 'rejected' && isVirtError(r.reason) ? r.reason.code : r.status);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('names are unique across command-service replicas', () => {
  let stack: Stack;
  let conns: Nats[] = [];
  let clients: VirtplaneClient[] = [];

  const expectLogUnique = async () => {
    const { holders, violations } = await foldNames(stack.nats.nats);
    expect(violations).toEqual([]);
    return holders;
  };

  /** The domains named `name` in the views, once they reflect the log up to now. */
  const viewed = async (name: string) => {
    const minSeq = await lastSeq(stack.nats.nats);
    return (await stack.client.list({ all: true, name, minSeq, waitMs: 10_000 })).filter((d) => d.name === name);
  };

  beforeAll(async () => {
    stack = await startStack({ services: [], env: { VIRTPLANE_NAME_CLAIM_GRACE_MS: String(GRACE_MS) } });
    await stack.start('command', {}, 'command-a');
    await stack.start('command', {}, 'command-b');
    await stack.start('projector');
    await stack.start('host-agent');
    conns = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => connectNats(stack.nats.url, `names-client-${i}`)));
    clients = conns.map((n) => VirtplaneClient.over(n, { actor: 'test', requestTimeoutMs: 15_000 }));
  }, 120_000);
  afterAll(async () => {
    for (const n of conns) await n.close();
    await stack?.stop();
  });

  it(`${CLIENTS} clients defining one new name at once: one domain, and refused defines store nothing (${ROUNDS} rounds)`, async () => {
    const n = stack.nats.nats;
    for (let round = 0; round < ROUNDS; round++) {
      const name = `race-${round}`;
      const before = await lastSeq(n);
      const results = await Promise.allSettled(clients.map((c) => c.define({ definition: domainDef(name) })));
      const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      expect(winners, `round ${round}: ${results.map(codeOf).join(',')}`).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(['operation-failed', 'conflict']).toContain(codeOf(r));
      const winner = winners[0]!.domainId;

      // The log gained exactly the winner's claim and its definition: nothing from the refused ones.
      const added = await commitsBetween(n, before, await lastSeq(n));
      const mine = added.filter((c) => c.subject.startsWith('ev.domain.') || c.subject.startsWith('ev.name.domain.'));
      expect(mine.map((c) => c.subject).sort()).toEqual([`ev.domain.${winner}`, mine.find((c) => c.subject.startsWith('ev.name.'))?.subject].sort());
      const claim = mine.find((c) => c.subject.startsWith('ev.name.'))!;
      expect((claim.events[0]!.data as { uuid: string }).uuid).toBe(winner);

      expect((await viewed(name)).map((d) => d.id)).toEqual([winner]);
    }
    const holders = await expectLogUnique();
    for (let round = 0; round < ROUNDS; round++) expect(holders.domain.get(`race-${round}`)).toHaveLength(1);
  }, 300_000);

  it('define, undefine and re-define racing on one name never give it to two domains', async () => {
    const name = 'flip';
    const a = randomUUID();
    await stack.client.define({ definition: domainDef(name, a) });
    for (let round = 0; round < 8; round++) {
      const [c1, c2, c3, c4] = clients;
      const results = await Promise.allSettled([
        c1!.undefine(a),
        c2!.define({ definition: domainDef(name, a) }),
        c3!.define({ definition: domainDef(name) }),
        c4!.define({ definition: domainDef(name) }),
        clients[4]!.undefine(name),
        clients[5]!.define({ definition: domainDef(name, a) }),
      ]);
      for (const r of results) {
        // Every refusal is one of libvirt's answers, never a crash or a timeout.
        if (r.status === 'rejected') expect(['operation-failed', 'conflict', 'no-domain'], String(r.reason)).toContain(codeOf(r));
      }
      await expectLogUnique();
    }
    const holders = await expectLogUnique();
    const inLog = holders.domain.get(name) ?? [];
    expect(inLog.length).toBeLessThanOrEqual(1);
    expect((await viewed(name)).map((d) => d.id)).toEqual(inLog);

    // Liveness: once the holder is gone and any claim in flight has aged, a new domain gets the name.
    for (const id of inLog) await stack.client.undefine(id);
    await sleep(GRACE_MS + 200);
    const fresh = await stack.client.define({ definition: domainDef(name) });
    expect((await viewed(name)).map((d) => d.id)).toEqual([fresh.domainId]);
  }, 300_000);

  it('a claim whose define never came (its service died) holds the name only while young, and its late define cannot land after a takeover', async () => {
    const n = stack.nats.nats;
    const store = new EventStore(n);
    const repo = new Repository(store, domainKind);
    const name = 'orphan';
    const zombie = randomUUID();
    const meta = () => ({ commandId: randomUUID(), actor: 'test', correlationId: randomUUID(), causationId: randomUUID(), traceContext: {}, now: new Date() });
    // What a command service leaves when it dies between claim and define: the claim, and no domain.
    const claimSeq = await new NameClaims(store, 'domain', { graceMs: GRACE_MS }).claim(name, zombie, meta(), (u) => repo.load(u));

    // While young, it may be a define in flight: others are refused and nothing is stored.
    const before = await lastSeq(n);
    await expect(stack.client.define({ definition: domainDef(name) })).rejects.toMatchObject({ code: 'conflict' });
    expect(await lastSeq(n)).toBe(before);

    // Once old, takers race the late define of the dead service's request: exactly one lands.
    await sleep(GRACE_MS + 200);
    const def = DomainDefinition.parse(domainDef(name, zombie));
    const late = repo.execute(zombie, meta(), (s) => decide({ type: 'define', definition: def, hostId: stack.hostId, claimSeq }, s, new Date()));
    const results = await Promise.allSettled([late, ...clients.slice(0, 6).map((c) => c.define({ definition: domainDef(name) }))]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok, results.map(codeOf).join(',')).toHaveLength(1);
    const holders = await expectLogUnique();
    expect(holders.domain.get(name)).toHaveLength(1);
    expect((await viewed(name)).map((d) => d.id)).toEqual(holders.domain.get(name));

    // The ordering that matters, pinned down: the takeover first, then the late define.
    const name2 = 'orphan-2';
    const zombie2 = randomUUID();
    const claim2 = await new NameClaims(store, 'domain', { graceMs: GRACE_MS }).claim(name2, zombie2, meta(), (u) => repo.load(u));
    await sleep(GRACE_MS + 200);
    const taker = await stack.client.define({ definition: domainDef(name2) });
    const def2 = DomainDefinition.parse(domainDef(name2, zombie2));
    const atTakeover = await lastSeq(n);
    await expect(
      repo.execute(zombie2, meta(), (s) => decide({ type: 'define', definition: def2, hostId: stack.hostId, claimSeq: claim2 }, s, new Date())),
    ).rejects.toMatchObject({ code: 'conflict' });
    expect(await lastSeq(n)).toBe(atTakeover);
    expect((await expectLogUnique()).domain.get(name2)).toEqual([taker.domainId]);
  }, 120_000);

  it('a replica killed with SIGKILL among defines in flight loses no name for good and gives none twice', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `killed-${i}`);
    const quick = conns.map((c) => VirtplaneClient.over(c, { actor: 'test', requestTimeoutMs: 4000 }));
    const inFlight = Promise.allSettled(names.flatMap((name, i) => [quick[i % CLIENTS]!.define({ definition: domainDef(name) }), quick[(i + 7) % CLIENTS]!.define({ definition: domainDef(name) })]));
    await sleep(15);
    await stack.kill('command-b');
    await inFlight;
    await stack.start('command', {}, 'command-b');
    await expectLogUnique();

    // Every name can be had: defined already, or free once a claim left behind has aged.
    await sleep(GRACE_MS + 200);
    const holders0 = (await foldNames(stack.nats.nats)).holders.domain;
    for (const name of names) {
      if (!holders0.has(name)) await stack.client.define({ definition: domainDef(name) });
    }
    const holders = await expectLogUnique();
    for (const name of names) {
      expect(holders.domain.get(name), name).toHaveLength(1);
      expect((await viewed(name)).map((d) => d.id), name).toEqual(holders.domain.get(name));
    }
  }, 180_000);

  it('networks and pools: racing defines of one new name give it to one', async () => {
    const netResults = await Promise.allSettled(
      clients.slice(0, 10).map((c, i) => c.netDefine({ definition: { name: 'net-race', forward: { mode: 'nat' }, ips: [{ address: `10.${i}.0.1`, prefix: 24 }] } })),
    );
    expect(netResults.filter((r) => r.status === 'fulfilled'), netResults.map(codeOf).join(',')).toHaveLength(1);
    const poolResults = await Promise.allSettled(
      clients.slice(0, 10).map((c, i) => c.poolDefine({ definition: { name: 'pool-race', type: 'dir', target: { path: `/tmp/virtplane-pool-race-${i}` } }, hostId: stack.hostId })),
    );
    expect(poolResults.filter((r) => r.status === 'fulfilled'), poolResults.map(codeOf).join(',')).toHaveLength(1);
    const holders = await expectLogUnique();
    expect(holders.network.get('net-race')).toHaveLength(1);
    expect(holders.pool.get('pool-race')).toHaveLength(1);
    const minSeq = await lastSeq(stack.nats.nats);
    expect((await stack.client.netList({ all: true, minSeq, waitMs: 10_000 })).filter((x) => x.name === 'net-race').map((x) => x.id)).toEqual(holders.network.get('net-race'));
    expect((await stack.client.poolList({ all: true, minSeq, waitMs: 10_000 })).filter((x) => x.name === 'pool-race').map((x) => x.id)).toEqual(holders.pool.get('pool-race'));

    // Re-defining the network under its uuid with a new name is refused and stores nothing.
    const id = holders.network.get('net-race')![0]!;
    const before = await lastSeq(stack.nats.nats);
    await expect(stack.client.netDefine({ definition: { name: 'net-renamed', uuid: id, forward: { mode: 'nat' }, ips: [{ address: '10.99.0.1', prefix: 24 }] } })).rejects.toMatchObject({
      code: 'operation-failed',
    });
    expect(await lastSeq(stack.nats.nats)).toBe(before);
  }, 120_000);
});
