import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtplaneClient } from '../../client/index.ts';
import { Commit } from '../../contracts/envelope.ts';
import { volStreamSubjects } from '../../contracts/storage/stream.ts';
import { BUCKETS, STREAMS, subjects } from '../../contracts/subjects.ts';
import { connectNats, decodeJson, encodeJson, type Nats } from '../../platform/nats.ts';
import { call } from '../../platform/rpc.ts';
import { startSecuredNats, startSecuredServices, type SecuredNats } from '../fixtures/secured.ts';

/**
 * An attacker holding one principal's credentials, against the generated permissions on a real
 * nats-server: each attempt is refused by the server, or, for reads, yields nothing of another's.
 */

const refused = async (p: Promise<unknown>, subject?: string | RegExp) => {
  const e = await p.then(
    () => null,
    (err: unknown) => err as Error & { cause?: Error },
  );
  expect(e, 'the server let it through').not.toBeNull();
  const text = `${e?.message} ${e?.cause?.message ?? ''}`;
  expect(text).toMatch(/Permissions Violation|Authorization Violation/);
  if (subject) expect(text).toMatch(subject);
};

/** A plain publish has no reply to fail: the server's refusal is in its log. */
const publishRefused = async (s: SecuredNats, who: string, n: Nats, subject: string, body: unknown, reply?: string) => {
  const before = s.violations().length;
  n.nc.publish(subject, encodeJson(body), reply ? { reply } : {});
  await n.nc.flush().catch(() => undefined);
  const end = Date.now() + 5000;
  while (s.violations().length === before && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  expect(s.violations().slice(before).join('\n')).toContain(`Publish Violation - Nkey "${(await import('../../platform/security/principals.ts')).AuthStore.publicKeyOf(s.auth.seedFile(who))}", Subject "${subject}"`);
};

const subscribeRefused = async (n: Nats, subject: string) => {
  const sub = n.nc.subscribe(subject);
  const got = await (async () => {
    for await (const _ of sub) return 'message';
    return 'closed';
  })().catch((e: Error) => e.message);
  expect(got).toMatch(/Permissions Violation for Subscription/);
};

describe('one principal, one job: what a stolen credential cannot do', () => {
  let s: SecuredNats;
  let services: Awaited<ReturnType<typeof startSecuredServices>>;
  let dataDir: string;
  let alice: VirtplaneClient;
  let hostA: Nats;
  let onB: { domainId: string };
  beforeAll(async () => {
    s = await startSecuredNats({ hosts: ['host-a', 'host-b'], principals: [['alice', 'operator'], ['audrey', 'auditor']] });
    dataDir = await mkdtemp(join(tmpdir(), 'virtplane-attack-'));
    // The services, and host-b's agent: host-a is the attacker, connected by hand with its own seed.
    services = await startSecuredServices(s, { hostId: 'host-b', dataDir });
    alice = VirtplaneClient.over(await s.as('alice'));
    const def = await alice.define({ definition: { name: 'secret-b', memoryKiB: 131072, vcpus: 1, description: 'tenant secret' }, hostId: 'host-b' });
    await alice.outcome(await alice.start('secret-b'), 20_000);
    onB = def;
    hostA = await s.as('host-a');
  }, 90_000);
  afterAll(async () => {
    await services?.stop();
    await s?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  describe('nobody logs in without credentials', () => {
    it('refuses a connection with none, and one with a seed the server does not know', async () => {
      await refused(connectNats(s.url, 'anonymous'));
      const stranger = await mkdtemp(join(tmpdir(), 'virtplane-stranger-'));
      const { AuthStore } = await import('../../platform/security/principals.ts');
      const other = AuthStore.open(stranger);
      other.add('host-a', 'host');
      const { resolveNatsUrl } = await import('../../platform/config.ts');
      await refused(connectNats(resolveNatsUrl({ natsUrl: s.url, dataDir: stranger, natsContext: other.contextFile('host-a') }), 'forged'));
      await rm(stranger, { recursive: true, force: true });
    });
  });

  describe('a host reads nothing of others', () => {
    it('cannot read the EVENTS log in any way', async () => {
      await refused(hostA.jsm.streams.getMessage(STREAMS.events, { last_by_subj: subjects.aggregate('domain', onB.domainId) }), /EVENTS/);
      await refused(hostA.jsm.streams.info(STREAMS.events, { subjects_filter: '>' }), /EVENTS/);
      await refused(
        hostA.js.consumers.get(STREAMS.events, { filter_subjects: 'ev.>' }).then((c) => c.next({ expires: 2000 })),
        /EVENTS/,
      );
    });

    it("cannot read another host's lease in any way, and reads its own", async () => {
      const stream = `KV_${BUCKETS.hostLiveness}`;
      const other = `$KV.${BUCKETS.hostLiveness}.host-b`;
      await refused(hostA.jsm.streams.getMessage(stream, { last_by_subj: other }), new RegExp(stream));
      await refused(hostA.jsm.direct.getMessage(stream, { seq: 1 }), new RegExp(stream));
      await refused(hostA.jsm.direct.getMessage(stream, { last_by_subj: other }), /host-b/);
      await refused(hostA.jsm.streams.info(stream, { subjects_filter: '>' }).then(() => hostA.js.consumers.get(stream, { filter_subjects: other }).then((c) => c.next({ expires: 2000 }))), new RegExp(stream));
      const kv = await hostA.kvm.open(BUCKETS.hostLiveness);
      await refused(kv.get('host-b'), new RegExp(stream));
      // Its own lease, as the agent reads it back after a renewal whose answer was lost (a direct
      // get that names the key in its subject): answered, whether or not host-a ever renewed here.
      const own = await hostA.jsm.direct.getMessage(stream, { last_by_subj: `$KV.${BUCKETS.hostLiveness}.host-a` }).then(
        (m) => m?.subject ?? null,
        (e: Error) => (/Permissions Violation/.test(`${e.message} ${(e.cause as Error | undefined)?.message ?? ''}`) ? 'refused' : null),
      );
      expect(own === null || own === `$KV.${BUCKETS.hostLiveness}.host-a`).toBe(true);
    });

    it("cannot list the fleet's domains, and its own host's query shows only its own", async () => {
      await refused(call(hostA.nc, subjects.query('domain', 'list'), { all: true }), /query\.domain\.list/);
      await refused(call(hostA.nc, subjects.hostQuery('host-b', 'domain', 'list'), { all: true }), /host-b/);
      const mine = await call<{ domains: Array<{ id: string }> }>(hostA.nc, subjects.hostQuery('host-a', 'domain', 'list'), { all: true, host: 'host-b' });
      expect(mine.domains).toEqual([]);
    });

    it("cannot listen on anyone's inbox, nor put a forged reply into an operator's", async () => {
      await subscribeRefused(await s.as('host-a'), '_INBOX.>');
      await subscribeRefused(await s.as('host-a'), '_INBOX.alice.>');
      await subscribeRefused(await s.as('host-a'), 'task.>');
      await publishRefused(s, 'host-a', hostA, '_INBOX.alice.forged.1', { ok: true, forged: true });
    });
  });

  describe("a host cannot touch another's work", () => {
    it("cannot delete, redirect or pull from host-b's consumers, nor make one of its own", async () => {
      await refused(hostA.jsm.consumers.delete(STREAMS.tasks, 'agent-host-b'), /CONSUMER\.DELETE/);
      await refused(
        hostA.jsm.consumers.add(STREAMS.tasks, { durable_name: 'sneaky', filter_subject: subjects.task('host-b'), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All }),
        /CONSUMER/,
      );
      await refused(hostA.jsm.consumers.update(STREAMS.tasks, 'agent-host-b', { ack_wait: 1_000_000 }), /CONSUMER/);
      // Nor point its own consumer at host-b's work, with the filter in the subject or in the body.
      const redirect = { stream_name: STREAMS.tasks, config: { durable_name: 'agent-host-a', ack_policy: 'explicit', filter_subject: subjects.task('host-b') } };
      await refused(hostA.nc.request(`$JS.API.CONSUMER.CREATE.${STREAMS.tasks}.agent-host-a.${subjects.task('host-b')}`, encodeJson(redirect)), /CONSUMER\.CREATE/);
      await refused(hostA.nc.request(`$JS.API.CONSUMER.CREATE.${STREAMS.tasks}.agent-host-a`, encodeJson(redirect)), /CONSUMER\.CREATE/);
      await refused(hostA.nc.request(`$JS.API.CONSUMER.DURABLE.CREATE.${STREAMS.tasks}.agent-host-a`, encodeJson(redirect)), /CONSUMER\.DURABLE/);
      await refused(hostA.js.consumers.get(STREAMS.tasks, 'agent-host-b').then((c) => c.next({ expires: 2000 })), /agent-host-b/);
      await publishRefused(s, 'host-a', hostA, '$JS.ACK.TASKS.agent-host-b.1.1.1.1.1', '');
    });

    it("cannot delete the dispatcher's or the projector's consumer, nor its own", async () => {
      await refused(hostA.jsm.consumers.delete(STREAMS.events, 'dispatcher'), /CONSUMER\.DELETE/);
      await refused(hostA.jsm.consumers.delete(STREAMS.events, 'projector'), /CONSUMER\.DELETE/);
      await refused(hostA.jsm.consumers.delete(STREAMS.tasks, 'agent-host-a'), /CONSUMER\.DELETE/);
    });

    it('cannot speak for host-b or publish tasks', async () => {
      await refused(call(hostA.nc, subjects.agent('host-b', 'report'), { reportId: 'x' }), /agent\.host-b/);
      await publishRefused(s, 'host-a', hostA, subjects.task('host-b'), { forged: true });
      await publishRefused(s, 'host-a', hostA, subjects.aggregate('domain', onB.domainId), { forged: true });
    });

    it("cannot carry out or report host-b's disk hot-plug; the operator's attach runs on host-b", { timeout: 60_000 }, async () => {
      const accepted = await alice.attachDisk('secret-b', { type: 'file', source: { file: '/img/b.img' }, target: { dev: 'vdb', bus: 'virtio' } });
      const done = await alice.outcome(accepted, 20_000);
      expect(done.definition.devices.disks.map((d) => d.target.dev)).toEqual(['vdb']);
      const forged = { kind: 'failed', reportId: 'forged-detach-1', domainId: onB.domainId, taskId: accepted.taskId, error: { code: 'operation-failed', message: 'forged' } };
      await expect(call(hostA.nc, subjects.agent('host-a', 'report'), forged)).rejects.toMatchObject({ code: 'unauthorized' });
      // Inside a request of several, the forged one is refused on its own, and nothing of it recorded.
      const batch = await call<{ results: Array<{ ok: boolean; error?: { code: string } }> }>(hostA.nc, subjects.agent('host-a', 'report'), {
        reports: [forged, { ...forged, reportId: 'forged-detach-2' }],
      });
      expect(batch.results.map((r) => r.error?.code)).toEqual(['unauthorized', 'unauthorized']);
      await refused(call(hostA.nc, subjects.agent('host-b', 'report'), forged), /agent\.host-b/);
      const claim = await call<{ proceed: boolean }>(hostA.nc, subjects.agent('host-a', 'claim'), { taskId: accepted.taskId, domainId: onB.domainId, placementEpoch: done.placementEpoch });
      expect(claim.proceed).toBe(false);
      // Several claims at once are each decided for the host the subject names.
      const claims = await call<{ results: Array<{ proceed: boolean; reason?: string }> }>(hostA.nc, subjects.agent('host-a', 'claim'), {
        claims: [0, 1].map(() => ({ taskId: accepted.taskId, domainId: onB.domainId, placementEpoch: done.placementEpoch })),
      });
      expect(claims.results.map((r) => r.proceed)).toEqual([false, false]);
      expect(claims.results[0]?.reason).toMatch(/host-b/);
      const after = await alice.get('secret-b');
      expect(after.version).toBe(done.version);
      expect(after.lastError).toBeNull();
    });

    it("cannot hear, answer or open host-b's volume streams, nor look at host-b's volumes; an operator streams with host-b", { timeout: 60_000 }, async () => {
      const pool = await alice.poolDefine({ xml: `<pool type='dir'><name>b-pool</name><target><path>${join(dataDir, 'b-pool')}</path></target></pool>`, hostId: 'host-b' });
      await alice.storageOutcome(await alice.poolStart('b-pool', { build: true }), 20_000);
      await alice.storageOutcome(await alice.volCreate('b-pool', { definition: { name: 'b.raw', capacityBytes: 65536 } }), 20_000);
      const content = Buffer.from('tenant data on host-b '.repeat(3000));
      await writeFile(join(dataDir, 'b-upload.bin'), content);
      // The operator's stream with host-b's agent, under the generated permissions.
      await alice.volUpload('b.raw', join(dataDir, 'b-upload.bin'), { pool: 'b-pool' });
      expect((await alice.volDownload('b-pool/b.raw', join(dataDir, 'b-download.bin'))).bytes).toBe(content.length);
      expect((await readFile(join(dataDir, 'b-download.bin'))).equals(content)).toBe(true);

      await subscribeRefused(await s.as('host-a'), volStreamSubjects.open('host-b'));
      await subscribeRefused(await s.as('host-a'), 'volstream.>');
      await refused(call(hostA.nc, volStreamSubjects.open('host-b'), { direction: 'download', poolId: pool.poolId, volume: 'b.raw' }), /volstream\.host-b/);
      await publishRefused(s, 'host-a', hostA, volStreamSubjects.data('host-b'), { sessionId: 'forged-session', seq: 0, data: '' });
      await refused(call(hostA.nc, subjects.hostQuery('host-b', 'vol', 'get'), { pool: pool.poolId, volume: 'b.raw' }), /host-b/);
      // Through its own host's question, host-b's pool is no pool at all.
      await expect(call(hostA.nc, subjects.hostQuery('host-a', 'vol', 'get'), { pool: pool.poolId, volume: 'b.raw' })).rejects.toMatchObject({ code: 'no-storage-pool' });
      // An auditor reads; it streams nothing.
      await refused(call((await s.as('audrey')).nc, volStreamSubjects.open('host-b'), { direction: 'download', poolId: pool.poolId, volume: 'b.raw' }), /volstream/);
    });
  });

  describe("live readings of a host's guests", () => {
    it('only operators ask them, and only the host asked answers', async () => {
      const { stats } = await alice.domainStats('secret-b');
      expect(stats.groups).toEqual(['state']);
      expect((await alice.nodeStats('host-b')).cells.length).toBeGreaterThan(0);
      const audrey = await s.as('audrey');
      await refused(call(audrey.nc, subjects.hostRead('host-b', 'node-stats'), {}), /hostread\.host-b/);
      await refused(call(hostA.nc, subjects.hostRead('host-b', 'node-stats'), {}), /hostread\.host-b/);
      // The host verbs read the same way: an operator gets host-b's answer, an auditor or another host nothing.
      expect((await alice.nodeCpuMap('host-b')).present).toBe(8);
      for (const kind of ['vcpu-info', 'domain-time', 'max-vcpus', 'node-cpu-stats', 'node-cpu-map', 'sysinfo'] as const) {
        await refused(call(audrey.nc, subjects.hostRead('host-b', kind), {}), /hostread\.host-b/);
        await refused(call(hostA.nc, subjects.hostRead('host-b', kind), {}), /hostread\.host-b/);
      }
      // Nor can a host listen in on another's questions to answer them in its place.
      await subscribeRefused(await s.as('host-a'), subjects.hostRead('host-b', 'domain-stats'));
      await subscribeRefused(await s.as('host-a'), 'hostread.>');
    });
  });

  describe("readers of the log cannot touch the services' consumers", () => {
    it('an auditor reads history but cannot delete, pull from or reconfigure the projector or the dispatcher', async () => {
      const audit = await s.as('audrey');
      for (const d of ['projector', 'dispatcher', 'storage-dispatcher']) {
        await refused(audit.jsm.consumers.delete(STREAMS.events, d), /CONSUMER\.DELETE/);
        await refused(audit.jsm.consumers.info(STREAMS.events, d), /CONSUMER\.INFO/);
        await refused(audit.nc.request(`$JS.API.CONSUMER.MSG.NEXT.${STREAMS.events}.${d}`, encodeJson({ batch: 1, expires: 1e9 })), /MSG\.NEXT/);
        await refused(
          audit.nc.request(`$JS.API.CONSUMER.CREATE.${STREAMS.events}.${d}.>`, encodeJson({ stream_name: STREAMS.events, config: { name: d, durable_name: d, ack_policy: 'explicit', filter_subject: '>' } })),
          /CONSUMER\.CREATE/,
        );
      }
      // Its own reader of the log works.
      const mine = await audit.js.consumers.get(STREAMS.events, { filter_subjects: 'ev.domain.>' });
      expect((await mine.next({ expires: 5000 }))?.subject).toMatch(/^ev\.domain\./);
    });

    it("the command service and the projector cannot touch each other's consumers", async () => {
      const command = await s.as('command');
      const projector = await s.as('projector');
      await refused(command.jsm.consumers.delete(STREAMS.events, 'projector'), /CONSUMER\.DELETE/);
      await refused(projector.jsm.consumers.delete(STREAMS.events, 'dispatcher'), /CONSUMER\.DELETE/);
    });
  });

  describe('the log is safe from every service and operator', () => {
    it('the command service cannot delete, purge or reconfigure EVENTS', async () => {
      const command = await s.as('command');
      await refused(command.jsm.streams.delete(STREAMS.events), /STREAM\.DELETE/);
      await refused(command.jsm.streams.purge(STREAMS.events), /STREAM\.PURGE/);
      await refused(command.nc.request(`$JS.API.STREAM.UPDATE.${STREAMS.events}`, encodeJson({ name: STREAMS.events, subjects: ['ev.>'], max_msgs: 1 })), /STREAM\.UPDATE/);
    });

    it('the projector, operators and auditors cannot either', async () => {
      for (const who of ['projector', 'alice', 'audrey']) {
        const n = await s.as(who);
        await refused(n.jsm.streams.delete(STREAMS.events), /STREAM\.DELETE/);
        await refused(n.nc.request(`$JS.API.STREAM.UPDATE.${STREAMS.events}`, encodeJson({ name: STREAMS.events, subjects: ['ev.>'], max_msgs: 1 })), /STREAM\.UPDATE/);
      }
    });

    it('even the admin cannot purge or delete it, nor write history', async () => {
      const admin = await s.as('admin');
      await refused(admin.jsm.streams.purge(STREAMS.events), /STREAM\.PURGE/);
      await refused(admin.jsm.streams.delete(STREAMS.events), /STREAM\.DELETE/);
      await refused(admin.jsm.streams.deleteMessage(STREAMS.events, 1), /MSG\.DELETE/);
      await publishRefused(s, 'admin', admin, subjects.aggregate('domain', onB.domainId), { forged: true });
      // Nor lift the stream's own guard: the server keeps deny_purge and deny_delete once set.
      const { config } = await admin.jsm.streams.info(STREAMS.events);
      await expect(admin.jsm.streams.update(STREAMS.events, { ...config, deny_purge: false, deny_delete: false })).rejects.toThrow();
      expect((await admin.jsm.streams.info(STREAMS.events)).state.messages).toBeGreaterThan(0);
    });
  });

  describe('the actor is proven, not claimed', () => {
    it('records the principal whatever the client says, and keeps the claim only as a note', async () => {
      const forger = VirtplaneClient.over(await s.as('alice'), { actor: 'virtplane:deadline' });
      const d = await forger.define({ definition: { name: 'forged-actor', memoryKiB: 131072, vcpus: 1 } });
      const audit = await s.as('audrey');
      const msg = await audit.jsm.streams.getMessage(STREAMS.events, { last_by_subj: subjects.aggregate('domain', d.domainId) });
      const commit = Commit.parse(decodeJson(msg!.data));
      expect(commit.events.map((e) => [e.actor, e.actorNote])).toEqual([['alice', 'virtplane:deadline']]);
    });

    it("cannot send under another principal's name nor as a host", async () => {
      const n = await s.as('alice');
      await refused(call(n.nc, subjects.commandFor('bob', 'domain', 'define'), { definition: { name: 'x', memoryKiB: 1024, vcpus: 1 } }), /cmd\.bob/);
      await refused(call(n.nc, subjects.command('domain', 'define'), { definition: { name: 'x', memoryKiB: 1024, vcpus: 1 } }), /cmd\.domain\.define/);
      await refused(call(n.nc, subjects.agent('host-b', 'report'), { reportId: 'x' }), /agent\.host-b/);
      await refused(call(n.nc, subjects.agent('rogue', 'register'), {}), /agent\.rogue/);
    });

    it('an auditor sends no commands', async () => {
      const n = await s.as('audrey');
      await refused(call(n.nc, subjects.commandFor('audrey', 'domain', 'start'), { domain: 'secret-b' }), /cmd\.audrey/);
    });
  });

  describe('guest consoles', () => {
    it("a host cannot listen to another host's console sessions, open them, nor write into them", async () => {
      await subscribeRefused(await s.as('host-a'), subjects.consoleOut('host-b', '*'));
      await subscribeRefused(await s.as('host-a'), subjects.consoleIn('host-b', '*'));
      await subscribeRefused(await s.as('host-a'), subjects.consoleOpen('host-b', '*'));
      await subscribeRefused(await s.as('host-a'), 'console.>');
      await publishRefused(s, 'host-a', hostA, subjects.consoleOut('host-b', 'aaaaaaaaaaaaaaaaaaaaaaaa'), 'forged output');
      await publishRefused(s, 'host-a', hostA, subjects.consoleIn('host-b', 'aaaaaaaaaaaaaaaaaaaaaaaa'), 'typed');
      await refused(call(hostA.nc, subjects.consoleOpen('host-b', 'host-a'), { domainId: onB.domainId, sessionId: 'aaaaaaaaaaaaaaaaaaaaaaaa' }), /console\.open/);
    });

    it('an auditor cannot open a console nor read one', async () => {
      const audrey = await s.as('audrey');
      await subscribeRefused(audrey, subjects.consoleOut('host-b', '*'));
      await refused(call(audrey.nc, subjects.consoleOpen('host-b', 'audrey'), { domainId: onB.domainId, sessionId: 'aaaaaaaaaaaaaaaaaaaaaaaa' }), /console\.open/);
    });

    it('an operator opens a console only under its own name, and the host answers it', async () => {
      const n = alice.nats;
      await refused(call(n.nc, subjects.consoleOpen('host-b', 'bob'), { domainId: onB.domainId, sessionId: 'aaaaaaaaaaaaaaaaaaaaaaaa' }), /console\.open/);
      // The guest runs on the test driver, which has no consoles: the host's refusal is the answer.
      await expect(alice.console({ id: onB.domainId, hostId: 'host-b' }, { onData: () => undefined })).rejects.toMatchObject({
        code: 'operation-unsupported',
        message: 'this function is not supported by the connection driver: virDomainOpenConsole',
      });
    });
  });

  describe('host enrolment', () => {
    it('an unenrolled host cannot log in; once enrolled it registers and takes only its own work', async () => {
      const { resolveNatsUrl } = await import('../../platform/config.ts');
      // Not in the server's users yet: its context exists only after enrolment.
      await expect(Promise.resolve().then(() => resolveNatsUrl({ natsUrl: s.url, dataDir, natsContext: s.auth.contextFile('host-c') }))).rejects.toThrow(/cannot read/);
      await s.enroll('host-c', 'host');
      const c = await startSecuredServices(s, { hostId: 'host-c', dataDir, names: ['host-agent'] });
      try {
        const end = Date.now() + 20_000;
        while (!(await alice.hosts()).some((h) => h.hostId === 'host-c') && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
        expect((await alice.hosts()).map((h) => h.hostId).sort()).toEqual(['host-b', 'host-c']);
        const d = await alice.define({ definition: { name: 'on-c', memoryKiB: 131072, vcpus: 1 }, hostId: 'host-c' });
        expect((await alice.outcome(await alice.start(d.domainId), 20_000)).observed.state).toBe('running');
      } finally {
        await c.stop();
      }
    }, 60_000);

    it("rotating a host's key shuts out the old one", async () => {
      const old = await s.as('host-c');
      const { resolveNatsUrl } = await import('../../platform/config.ts');
      const oldTarget = resolveNatsUrl({ natsUrl: s.url, dataDir, natsContext: s.auth.contextFile('host-c') });
      const disconnected = (async () => {
        for await (const st of old.nc.status()) if (st.type === 'disconnect') return true;
        return false;
      })();
      await s.enroll('host-c', 'host', { rotate: true });
      expect(await Promise.race([disconnected, new Promise((r) => setTimeout(() => r(false), 10_000))])).toBe(true);
      await refused(connectNats(oldTarget, 'old-key'));
      const fresh = await s.as('host-c');
      expect(fresh.nc.isClosed()).toBe(false);
    }, 30_000);
  });

  describe('saved images', () => {
    it("a host reads no other host's images, the command service asks only what an image holds, and a path outside the image directories is refused", async () => {
      await refused(call(hostA.nc, subjects.hostRead('host-b', 'save-image'), { file: '/x/y.sav' }), /hostread\.host-b/);
      await subscribeRefused(await s.as('host-a'), subjects.hostRead('host-b', 'save-image'));
      await refused(call((await s.as('audrey')).nc, subjects.hostRead('host-b', 'save-image'), { file: '/x/y.sav' }), /hostread\.host-b/);
      // The command service may ask what an image holds, and nothing else of a host.
      await refused(call((await s.as('command')).nc, subjects.hostRead('host-b', 'node-stats'), {}), /hostread\.host-b/);
      // An operator naming a file outside host-b's image directories: the host refuses, the guest runs on.
      await expect(alice.outcome(await alice.save('secret-b', '/etc/virtplane-attack'), 20_000)).rejects.toMatchObject({ code: 'invalid-arg' });
      expect(await readFile('/etc/virtplane-attack').catch(() => null)).toBeNull();
      expect((await alice.get('secret-b')).observed.state).toBe('running');
      await expect(alice.saveImage('/etc/shadow', 'host-b')).rejects.toMatchObject({ code: 'invalid-arg' });
      // And a real save and restore under the generated permissions.
      const image = join(dataDir, 'hosts', 'host-b', 'save', 'secret-b.sav');
      await alice.outcome(await alice.save('secret-b', image), 20_000);
      expect((await alice.outcome(await alice.restore(image), 20_000)).observed).toEqual({ state: 'running', reason: 'restored' });
    });
  });
});
