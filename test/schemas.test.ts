import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Ajv as Ajv07 } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CATALOG, subjectPattern, type ChannelSpec } from '../contracts/catalog.ts';
import { PROJECT_ROOT } from '../platform/config.ts';
import { decodeText } from '../platform/nats.ts';
import { call } from '../platform/rpc.ts';
import { DOCS, jsonSchemaOf, messages, renderDocs } from '../scripts/schemas.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const addFormats = addFormatsModule as unknown as <A extends Ajv2020 | Ajv07>(ajv: A) => A;
const { version } = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };

describe('the documented subjects and messages', () => {
  it('are what `npm run schemas` writes from the contracts now', async () => {
    const files = renderDocs(version);
    for (const [path, text] of Object.entries(files)) {
      expect(await readFile(join(DOCS, path), 'utf8').catch(() => '(missing)'), `docs/${path}: run npm run schemas`).toBe(text);
    }
    expect((await readdir(join(DOCS, 'schemas'))).sort()).toEqual(Object.keys(files).filter((f) => f.startsWith('schemas/')).map((f) => f.slice('schemas/'.length)).sort());
  });

  it('form an AsyncAPI 3.0 document whose references all resolve', async () => {
    const doc = parse(await readFile(join(DOCS, 'asyncapi.yaml'), 'utf8')) as Record<string, Record<string, Record<string, unknown>>>;
    expect(doc.asyncapi).toBe('3.0.0');
    const resolve = (ref: string) => ref.slice(2).split('/').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], doc);
    const refs = JSON.stringify(doc).match(/"\$ref":"#[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(100);
    for (const r of refs) expect(resolve(r.slice(8, -1)), r).toBeDefined();
    for (const [name, m] of Object.entries(doc.components!.messages!)) {
      const file = (m as { payload: { schema: { $ref: string } } }).payload.schema.$ref;
      expect(file).toBe(`schemas/${name}.json`);
    }
    // Valid by AsyncAPI's own schema of the 3.0.0 document (and that schema does say no).
    const spec = JSON.parse(await readFile(join(PROJECT_ROOT, 'node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json'), 'utf8')) as object;
    const ajv = addFormats(new Ajv07({ strict: false, allErrors: true }));
    const valid = ajv.compile(spec);
    expect(valid(doc), ajv.errorsText(valid.errors)).toBe(true);
    const broken = structuredClone(doc);
    (broken.operations![CATALOG[0]!.id] as Record<string, unknown>).action = 'publish';
    expect(valid(broken)).toBe(false);
    // Every address's parameters are declared, and every channel of the catalogue is there.
    for (const c of CATALOG) {
      const ch = doc.channels![c.id] as { address: string; parameters?: Record<string, unknown> };
      expect(ch.address).toBe(c.address);
      for (const p of c.address.match(/\{([A-Za-z]+)\}/g) ?? []) expect(ch.parameters?.[p.slice(1, -1)], `${c.id} ${p}`).toBeDefined();
    }
  });
});

/** Which channel a subject is on; commands also in the form of a server without authentication. */
const channelOf = (subject: string): ChannelSpec | undefined => {
  const t = subject.split('.');
  const fits = (pattern: string) => {
    const p = pattern.split('.');
    return p.length === t.length && p.every((x, i) => x === '*' || x === t[i]);
  };
  return CATALOG.find((c) => fits(subjectPattern(c.address)) || (c.kind === 'command' && fits(subjectPattern(c.address).replace('cmd.*.', 'cmd.'))));
};
const OURS = /^(cmd|query|hostquery|hostread|agent|task|ev|lifecycle|netlifecycle|volstream|console\.open)\./;

describe('real messages of a running stack', () => {
  let stack: Stack;
  let dir: string;
  let tap: NatsConnection;
  const seen: Array<{ subject: string; channel: ChannelSpec; body: unknown; as: 'message' | 'reply' }> = [];
  const unknown: string[] = [];

  beforeAll(async () => {
    stack = await startStack({ services: [] });
    dir = await mkdtemp(join(tmpdir(), 'virtplane-schemas-'));
    // Everything on the bus, requests and replies alike (the test's server has no permissions to stop it).
    tap = await connect({ servers: stack.nats.url, name: 'schema-tap' });
    const inboxes = new Map<string, ChannelSpec>();
    tap.subscribe('>', {
      callback: (_e, m) => {
        const channel = channelOf(m.subject);
        if (!channel && !inboxes.has(m.subject)) {
          if (OURS.test(m.subject)) unknown.push(m.subject);
          return;
        }
        let body: unknown;
        try {
          body = m.data.length ? JSON.parse(decodeText(m.data)) : {};
        } catch {
          body = decodeText(m.data);
        }
        if (channel) {
          seen.push({ subject: m.subject, channel, body, as: 'message' });
          if (m.reply && channel.reply) inboxes.set(m.reply, channel);
        } else if (inboxes.has(m.subject)) {
          seen.push({ subject: m.subject, channel: inboxes.get(m.subject)!, body, as: 'reply' });
        }
      },
    });
    await tap.flush();
    for (const s of ['command', 'projector', 'host-agent'] as const) await stack.start(s);

    const c = stack.client;
    const step = (what: string) => process.env.VIRTPLANE_TEST_LOGS && process.stderr.write(`step: ${what}\n`);
    const d = await c.define({ definition: { name: 'doc-1', memoryKiB: 131072, vcpus: 1 } });
    await c.define({ xml: "<domain type='test'><name>doc-2</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>" });
    for (const op of ['start', 'suspend', 'resume', 'reboot', 'shutdown'] as const) {
      await c.outcome(op === 'start' ? await c.start('doc-1') : await c.operation(op, 'doc-1'), 20_000);
    }
    step('await c.outcome(await c.attachInterface');
    await c.outcome(await c.attachInterface('doc-1', { type: 'bridge', source: { bridge: 'vpdocbr0' }, mac: '52:54:00:0d:0c:01' }), 20_000);
    await c.outcome(await c.detachInterface('doc-1', '52:54:00:0d:0c:01'), 20_000);
    await c.outcome(await c.start('doc-1'), 20_000);
    step('disk verbs');
    await c.outcome(await c.attachDisk('doc-1', { type: 'file', source: { file: '/img/doc.img' }, target: { dev: 'vdb' } }), 20_000);
    await c.outcome(await c.detachDisk('doc-1', 'vdb'), 20_000);
    const cdrom = (iso: string) => `<disk type='file' device='cdrom'>${iso ? `<source file='${iso}'/>` : ''}<target dev='hdc' bus='ide'/><readonly/></disk>`;
    await c.outcome(await c.deviceXml('attach-device', 'doc-1', cdrom('/iso/a.iso'), { config: true }), 20_000);
    await c.outcome(await c.changeMedia('doc-1', 'hdc', 'eject', undefined, { config: true }), 20_000);
    await c.outcome(await c.deviceXml('update-device', 'doc-1', cdrom('/iso/b.iso'), { config: true }), 20_000);
    await c.outcome(await c.deviceXml('detach-device', 'doc-1', cdrom(''), { config: true }), 20_000);
    await c.outcome(await c.destroy('doc-1'), 20_000);
    await c.get('doc-1', { minVersion: d.version });
    await c.list({ all: true });
    await c.hosts();
    await c.undefine('doc-2');
    // A refusal is a message too.
    await expect(c.start('no-such-domain')).rejects.toMatchObject({ code: 'no-domain' });

    step('const net = await');
    const net = await c.netDefine({ xml: "<network><name>doc-net</name><forward mode='nat'/><ip address='192.168.151.1' netmask='255.255.255.0'/></network>" });
    await c.netAutostart('doc-net');
    await c.netGet('doc-net', { minVersion: net.version });
    await c.netList({ all: true });
    await c.netDhcpLeases('doc-net');
    await c.netUpdate('doc-net', { command: 'add', section: 'dns-host', xml: "<host ip='192.168.151.9'><hostname>doc</hostname></host>", config: true });
    // A live change sends hosts the notice (netlifecycle.<id>.live).
    await c.netStart('doc-net');
    await c.netUpdate('doc-net', { command: 'add', section: 'dns-host', xml: "<host ip='192.168.151.10'><hostname>doc2</hostname></host>", live: true });
    await c.netDestroy('doc-net');
    await c.netUndefine('doc-net');

    step('const pool = await');
    const pool = await c.poolDefine({ xml: `<pool type='dir'><name>doc-pool</name><target><path>${join(dir, 'pool')}</path></target></pool>` });
    await c.storageOutcome(await c.poolBuild('doc-pool'), 20_000);
    await c.storageOutcome(await c.poolStart('doc-pool'), 20_000);
    step('await c.storageOutcome(await c.volCreate');
    await c.storageOutcome(await c.volCreate('doc-pool', { xml: "<volume><name>d.qcow2</name><capacity unit='MiB'>1</capacity><target><format type='qcow2'/></target></volume>" }), 20_000);
    await c.volGet('d.qcow2', { pool: 'doc-pool' });
    await c.volList('doc-pool');
    await c.storageOutcome(await c.volResize('doc-pool', 'd.qcow2', 2 * 1024 * 1024), 20_000);
    await c.storageOutcome(await c.volClone('doc-pool', 'd.qcow2', 'e.qcow2'), 20_000);
    await c.storageOutcome(await c.volWipe('doc-pool', 'e.qcow2'), 20_000);
    await c.storageOutcome(await c.poolRefresh('doc-pool'), 20_000);
    step('vol-upload, vol-download');
    await writeFile(join(dir, 'up.bin'), Buffer.alloc(3000, 7));
    await c.volUpload('e.qcow2', join(dir, 'up.bin'), { pool: 'doc-pool' });
    await c.volDownload('doc-pool/e.qcow2', join(dir, 'down.bin'));
    const session = await call<{ sessionId: string }>(stack.nats.nats.nc, `volstream.${stack.hostId}.open`, { direction: 'download', poolId: pool.poolId, volume: 'e.qcow2' });
    await call(stack.nats.nats.nc, `volstream.${stack.hostId}.abort`, { sessionId: session.sessionId });
    await c.storageOutcome(await c.volDelete('doc-pool', 'd.qcow2'), 20_000);
    await c.storageOutcome(await c.volDelete('doc-pool', 'e.qcow2'), 20_000);
    await c.poolAutostart('doc-pool');
    await call(stack.nats.nats.nc, `hostquery.${stack.hostId}.pool.list`, { all: true });
    await c.poolGet('doc-pool', { minVersion: pool.version });
    await c.poolList({ all: true });
    step('await c.storageOutcome(await c.poolDestr');
    await c.storageOutcome(await c.poolDestroy('doc-pool'), 20_000);
    await c.storageOutcome(await c.poolDelete('doc-pool'), 20_000);
    await c.poolUndefine('doc-pool');
    await c.storageOutcome(await c.poolCreate({ xml: `<pool type='dir'><name>doc-transient</name><target><path>${join(dir, 'tpool')}</path></target></pool>`, build: true }), 20_000);
    await c.poolDestroy('doc-transient');

    step('secrets');
    const sec = await c.secretDefine("<secret><usage type='ceph'><name>doc-ceph</name></usage></secret>");
    await c.secretSetValue(sec.secretId, Buffer.from('doc'));
    await c.secretGetValue(sec.secretId);
    await c.secretGet(sec.secretId, { minVersion: sec.version });
    await c.secretList();
    await c.secretUndefine(sec.secretId);

    step('create, desc, rename');
    await c.outcome(await c.create({ definition: { name: 'doc-3', memoryKiB: 65536, vcpus: 1 } }), 20_000);
    await c.setMetadata('doc-1', 'description', 'documented');
    await c.setAppMetadata('doc-1', 'http://example.org/doc', 'doc', '<doc/>');
    await c.setResources('doc-1', { kind: 'memory', kib: 65536 }, { config: true });
    // Live readings asked of the host agent.
    await c.domainStats('doc-3');
    await c.nodeStats(stack.hostId);
    await c.vcpuInfo('doc-3');
    await c.domainTime('doc-3');
    await c.maxVcpus(stack.hostId, 'kvm');
    await c.nodeCpuStats(stack.hostId, 0);
    await c.nodeCpuMap(stack.hostId);
    await c.sysinfo(stack.hostId);
    // The test driver answers libvirt's "not supported": the error reply is the documented one.
    await expect(c.domainCapabilities(stack.hostId)).rejects.toMatchObject({ code: 'operation-unsupported' });
    await c.rename('doc-1', 'doc-1b');
    step('autostart, reset, send-key, inject-nmi, screenshot, blockresize, managedsave');
    await c.autostart('doc-1b');
    await c.outcome(await c.reset('doc-3'), 20_000);
    await c.outcome(await c.sendKey('doc-3', { keycodes: [30] }), 20_000);
    await c.outcome(await c.injectNmi('doc-3'), 20_000);
    const shot = await c.screenshot('doc-3');
    const shotView = await c.outcome(shot, 20_000);
    expect((await c.screenshotBytes(shotView.hostId, shot.taskId!)).subarray(1, 4).toString()).toBe('PNG');
    // The test driver has no virDomainBlockResize: the request is the documented one all the same.
    await expect(c.blockResize('doc-3', 'vda', 1 << 20)).rejects.toMatchObject({ code: 'operation-unsupported' });
    await c.outcome(await c.start('doc-1b'), 20_000);
    await c.outcome(await c.managedSave('doc-1b'), 20_000);
    await c.managedSaveRemove('doc-1b');
    await c.outcome(await c.start('doc-1b'), 20_000);
    await c.outcome(await c.managedSave('doc-1b'), 20_000);
    await c.undefine('doc-1b', { managedSave: true });
    step('save, save-image, restore');
    const image = join(stack.dataDir, 'hosts', stack.hostId, 'save', 'doc-3.sav');
    await c.outcomeOrGone(await c.save('doc-3', image), 20_000);
    await c.saveImage(image, stack.hostId);
    await c.outcome(await c.restore(image), 20_000);
    step('snapshots');
    await c.outcome(await c.snapshotCreate('doc-3', { name: 'doc-s1', description: 'documented' }), 20_000);
    await c.outcome(await c.snapshotCreate('doc-3', { xml: '<domainsnapshot><name>doc-s2</name></domainsnapshot>' }), 20_000);
    await c.outcome(await c.snapshotRevert('doc-3', { name: 'doc-s1', paused: true }), 20_000);
    await c.snapshotSetCurrent('doc-3', 'doc-s2');
    await c.outcome(await c.snapshotDelete('doc-3', { name: 'doc-s1', children: true }), 20_000);
    // Host verbs on a host that does not exist: the request and the refusal are messages all the same.
    await c.hostEvacuate('no-such-host').catch(() => undefined);
    await c.hostRemove('no-such-host').catch(() => undefined);
    await c.hostReadmit('no-such-host').catch(() => undefined);

    step('await c.hostMaintenance(stack.hostId, tr');
    await c.hostMaintenance(stack.hostId, true);
    await c.hostMaintenance(stack.hostId, false);
    // What a host agent asks about its own guests, answered by the projector.
    await call(stack.nats.nats.nc, `hostquery.${stack.hostId}.domain.list`, {});
    // A console asked of the host running a guest: the test driver has none, and says so.
    await expect(c.console(await c.get('doc-3'), { onData: () => undefined })).rejects.toMatchObject({ code: 'operation-unsupported' });
    await tap.flush();
    await new Promise((r) => setTimeout(r, 500));
  }, 240_000);

  afterAll(async () => {
    await tap?.close();
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('are all on documented subjects', () => {
    expect([...new Set(unknown)]).toEqual([]);
  });

  it('each pass the schema of their subject, and every schema is met by at least one', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    const validators = new Map(messages().map((m) => [m.name, ajv.compile(jsonSchemaOf(m))]));
    const met = new Set<string>();
    for (const s of seen) {
      const m = s.as === 'reply' ? s.channel.reply! : s.channel.message;
      const validate = validators.get(m.name)!;
      expect(validate(s.body), `${s.subject} (${m.name}): ${ajv.errorsText(validate.errors)}\n${JSON.stringify(s.body).slice(0, 600)}`).toBe(true);
      met.add(m.name);
    }
    expect(messages().map((m) => m.name).filter((n) => !met.has(n))).toEqual([]);
    expect(seen.length).toBeGreaterThan(150);
    // And they say no to what is not so: a lifecycle event without its domain, a command with a number for a name.
    const event = seen.find((s) => s.channel.id === 'lifecycle-domain')!.body as Record<string, unknown>;
    const { domainId: _gone, ...withoutDomain } = event;
    expect(validators.get('LifecycleEvent')!(withoutDomain)).toBe(false);
    expect(validators.get('DomainOpRequest')!({ domain: 7 })).toBe(false);
  });
});
