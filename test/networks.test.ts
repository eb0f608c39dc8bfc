import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetworkLifecycleEvent } from '../contracts/network/lifecycle.ts';
import { decodeJson } from '../platform/nats.ts';
import { virtplane as runCli } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';


const collect = (stack: Stack, networkId?: string) => {
  const events: NetworkLifecycleEvent[] = [];
  const ac = new AbortController();
  const done = (async () => {
    for await (const e of stack.client.netEvents({ ...(networkId ? { networkId } : {}), from: 'all', signal: ac.signal })) events.push(e);
  })().catch(() => undefined);
  return {
    events,
    async until(n: number, ms = 10_000) {
      const end = Date.now() + ms;
      while (events.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
      return events.map((e) => e.event);
    },
    async stop() {
      ac.abort();
      await done;
    },
  };
};

const NAT_XML = `<network>
  <name>xml-net</name>
  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>
  <forward mode='nat'>
    <nat><port start='1024' end='65535'/></nat>
  </forward>
  <bridge name='virbr9' stp='on' delay='0'/>
  <mac address='52:54:00:0a:cd:21'/>
  <domain name='example.org'/>
  <dns>
    <forwarder addr='8.8.8.8'/>
    <host ip='192.168.150.2'><hostname>myhost</hostname></host>
  </dns>
  <ip address='192.168.150.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.150.2' end='192.168.150.254'/>
      <host mac='52:54:00:6c:3c:01' name='vm1' ip='192.168.150.10'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='2001:db8:ca2:2::1' prefix='64'/>
  <route address='192.168.222.0' prefix='24' gateway='192.168.150.2'/>
  <portgroup name='engineering' default='yes'/>
  <vendorthing foo='bar'>kept as is</vendorthing>
</network>
`;

describe('networks through the client and the CLI, end to end', () => {
  let stack: Stack;
  let env: Record<string, string>;
  let dir: string;
  const lastSeq = async () => (await stack.nats.nats.jsm.streams.info('EVENTS')).state.last_seq;
  const virtplane = (...args: string[]) => runCli(env, ...args);
  const raw = async (subject: string, body: string) => {
    const m = await stack.nats.nats.nc.request(subject, body, { timeout: 5000 });
    return decodeJson(m.data) as { ok: boolean; error?: { code: string; message: string; details?: unknown } };
  };

  beforeAll(async () => {
    stack = await startStack();
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
    dir = await mkdtemp(join(tmpdir(), 'vp-net-'));
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('defines, starts, marks autostart, destroys and undefines, with views and lifecycle events', async () => {
    const c = stack.client;
    const def = await c.netDefine({
      definition: { name: 'life-net', forward: { mode: 'nat' }, ips: [{ address: '192.168.140.1', prefix: 24, dhcp: { ranges: [{ start: '192.168.140.2', end: '192.168.140.254' }] } }] },
    });
    expect(def).toMatchObject({ ok: true, name: 'life-net', networkId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const feed = collect(stack, def.networkId);

    let v = await c.netGet('life-net', { minVersion: def.version });
    expect(v).toMatchObject({ id: def.networkId, name: 'life-net', active: false, persistent: true, autostart: false, version: def.version, nextDefinition: null });
    expect(v.bridge).toBe(`vpbr${def.networkId.replace(/-/g, '').slice(0, 11)}`);
    expect(v.definition.xml).toContain("<forward mode='nat'/>");
    expect(v.definition.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(await c.netList()).toEqual([]);
    expect((await c.netList({ all: true })).map((n) => n.name)).toEqual(['life-net']);

    const started = await c.netStart('life-net');
    v = await c.netGet(def.networkId, { minVersion: started.version });
    expect(v.active).toBe(true);
    expect((await c.netList()).map((n) => n.name)).toEqual(['life-net']);
    expect(await c.netList({ inactive: true })).toEqual([]);

    const auto = await c.netAutostart('life-net');
    expect((await c.netGet('life-net', { minVersion: auto.version })).autostart).toBe(true);
    // Setting the flag to what it already is records nothing.
    const before = await lastSeq();
    expect((await c.netAutostart('life-net', true)).version).toBe(auto.version);
    expect(await lastSeq()).toBe(before);

    const destroyed = await c.netDestroy('life-net');
    v = await c.netGet('life-net', { minVersion: destroyed.version });
    expect(v).toMatchObject({ active: false, persistent: true, autostart: true });

    const un = await c.netUndefine('life-net');
    await expect(c.netGet('life-net', { minVersion: un.version })).rejects.toMatchObject({
      code: 'no-network',
      message: "Network not found: no network with matching name 'life-net'",
    });
    expect(await c.netList({ all: true })).toEqual([]);

    expect(await feed.until(4)).toEqual(['DEFINED', 'STARTED', 'STOPPED', 'UNDEFINED']);
    expect(feed.events.map((e) => [e.eventNumber, e.detail])).toEqual([[0, 0], [2, 0], [3, 0], [1, 0]]);
    expect(feed.events.every((e) => e.name === 'life-net' && e.networkId === def.networkId && e.actor === 'test')).toBe(true);
    expect(feed.events.map((e) => e.version)).toEqual([def.version, started.version, destroyed.version, un.version]);
    await feed.stop();

    // Domain subscribers see none of it: network events have their own subjects.
    const domainEvents = await stack.nats.nats.jsm.streams.info('LIFECYCLE', { subjects_filter: 'lifecycle.>' });
    expect(Object.keys(domainEvents.state.subjects ?? {}).some((s) => s.includes(def.networkId))).toBe(false);
  });

  it('answers forbidden transitions with libvirt errors and records nothing', async () => {
    const c = stack.client;
    const d = await c.netDefine({ definition: { name: 'rules-net' } });
    // libvirt's test driver destroys an inactive network without complaint.
    const again = await c.netDestroy('rules-net');
    expect(again.name).toBe('rules-net');
    expect((await c.netGet('rules-net', { minVersion: again.version })).active).toBe(false);
    await c.netStart('rules-net');
    const before = await lastSeq();
    await expect(c.netStart('rules-net')).rejects.toMatchObject({ code: 'operation-invalid', message: "Network 'rules-net' is already running" });
    await expect(c.netUndefine('rules-net')).rejects.toMatchObject({ code: 'operation-invalid', message: "Network 'rules-net' is still running" });
    await expect(c.netStart('ghost-net')).rejects.toMatchObject({ code: 'no-network', message: "Network not found: no network with matching name 'ghost-net'" });
    const id = randomUUID();
    for (const op of [() => c.netDestroy(id), () => c.netUndefine(id), () => c.netAutostart(id)]) {
      await expect(op()).rejects.toMatchObject({ code: 'no-network', message: `Network not found: no network with matching uuid '${id}'` });
    }
    await expect(c.netGet('ghost-net')).rejects.toMatchObject({ code: 'no-network' });
    expect(await lastSeq()).toBe(before);
    expect((await c.netGet(d.networkId)).active).toBe(true);
    await c.netDestroy('rules-net');
  });

  it('refuses a taken name and a renamed uuid, and lets the name go with the network', async () => {
    const c = stack.client;
    const first = await c.netDefine({ definition: { name: 'taken-net' } });
    const before = await lastSeq();
    await expect(c.netDefine({ definition: { name: 'taken-net' } })).rejects.toMatchObject({
      code: 'operation-failed',
      message: `network 'taken-net' already exists with uuid ${first.networkId}`,
    });
    await expect(c.netDefine({ definition: { name: 'renamed-net', uuid: first.networkId } })).rejects.toMatchObject({
      code: 'operation-failed',
      message: `network 'taken-net' is already defined with uuid ${first.networkId}`,
    });
    expect(await lastSeq()).toBe(before);
    await c.netUndefine('taken-net');
    const again = await c.netDefine({ definition: { name: 'taken-net' } });
    expect(again.networkId).not.toBe(first.networkId);
    expect((await c.netGet('taken-net', { minVersion: again.version })).id).toBe(again.networkId);
  });

  it('redefining an active network takes effect when it stops', async () => {
    const c = stack.client;
    const d = await c.netDefine({ definition: { name: 'redef-net', ips: [{ address: '10.10.0.1', prefix: 24 }] } });
    await c.netStart('redef-net');
    const r = await c.netDefine({ definition: { name: 'redef-net', uuid: d.networkId, ips: [{ address: '10.20.0.1', prefix: 24 }] } });
    const v = await c.netGet('redef-net', { minVersion: r.version });
    expect(v.definition.ips[0]?.address).toBe('10.10.0.1');
    expect(v.nextDefinition?.ips[0]?.address).toBe('10.20.0.1');
    const inactive = await virtplane('net-dumpxml', 'redef-net', '--inactive');
    expect(inactive.stdout).toContain("<ip address='10.20.0.1' prefix='24'/>");
    const x = await c.netDestroy('redef-net');
    const after = await c.netGet('redef-net', { minVersion: x.version });
    expect(after.definition.ips[0]?.address).toBe('10.20.0.1');
    expect(after.nextDefinition).toBeNull();
  });

  it('applies a command id once and repeats the first reply', async () => {
    const c = stack.client;
    const commandId = `cmd-${randomUUID()}`;
    const first = await c.netDefine({ definition: { name: 'idem-net' } }, { commandId });
    const before = await lastSeq();
    const second = await c.netDefine({ definition: { name: 'idem-net' } }, { commandId });
    expect(second).toMatchObject({ networkId: first.networkId, version: first.version, duplicate: true });
    expect(await lastSeq()).toBe(before);
  });

  it('speaks virsh: net-define from XML, net-start, net-list, net-info, net-autostart, net-destroy, net-undefine, net-event', async () => {
    const file = join(dir, 'net.xml');
    await writeFile(file, NAT_XML);
    expect((await virtplane('net-define', file)).stdout.trim()).toBe(`Network xml-net defined from ${file}`);
    expect((await virtplane('net-start', 'xml-net')).stdout.trim()).toBe('Network xml-net started');
    expect((await virtplane('net-autostart', 'xml-net')).stdout.trim()).toBe('Network xml-net marked as autostarted');
    const list = await virtplane('net-list');
    expect(list.stdout).toMatch(/^ Name\s+State\s+Autostart\s+Persistent\n-+\n xml-net\s+active\s+yes\s+yes\n$/);
    const info = (await virtplane('net-info', 'xml-net')).stdout;
    expect(info).toBe(
      [
        'Name:           xml-net',
        'UUID:           3e3fce45-4f53-4fa7-bb32-11f34168b82b',
        'Active:         yes',
        'Persistent:     yes',
        'Autostart:      yes',
        'Bridge:         virbr9',
        '',
      ].join('\n'),
    );
    expect((await virtplane('net-uuid', 'xml-net')).stdout.trim()).toBe('3e3fce45-4f53-4fa7-bb32-11f34168b82b');
    expect((await virtplane('net-name', '3e3fce45-4f53-4fa7-bb32-11f34168b82b')).stdout.trim()).toBe('xml-net');
    expect((await virtplane('net-autostart', 'xml-net', '--disable')).stdout.trim()).toBe('Network xml-net unmarked as autostarted');
    const json = JSON.parse((await virtplane('net-list', '--all', '--json')).stdout);
    expect(json).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'xml-net', active: true, autostart: false, bridge: 'virbr9' })]));
    expect((await virtplane('net-destroy', 'xml-net')).stdout.trim()).toBe('Network xml-net destroyed');
    expect((await virtplane('net-list')).stdout).not.toMatch(/xml-net/);
    expect((await virtplane('net-list', '--inactive')).stdout).toMatch(/ xml-net\s+inactive\s+no\s+yes/);
    const events = (await virtplane('net-event', '--network', 'xml-net', '--history', '--loop', '--timeout', '2')).stdout.trim().split('\n');
    expect(events).toEqual([
      "event 'lifecycle' for network xml-net: Defined",
      "event 'lifecycle' for network xml-net: Started",
      "event 'lifecycle' for network xml-net: Stopped",
      'event loop timed out',
      'events received: 3',
    ]);
    const one = JSON.parse((await virtplane('net-event', '--network', 'xml-net', '--history', '--json')).stdout);
    expect(one).toMatchObject({ event: 'DEFINED', eventNumber: 0, detail: 0, name: 'xml-net' });
    expect((await virtplane('net-undefine', 'xml-net')).stdout.trim()).toBe('Network xml-net has been undefined');
    const gone = await virtplane('net-info', 'xml-net');
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe("error: Network not found: no network with matching name 'xml-net' [no-network]");
  });

  it('net-create starts a transient network that is gone once destroyed, with net-list and net-event as virsh shows them', async () => {
    const file = join(dir, 'transient.xml');
    await writeFile(file, "<network><name>tr-net</name><bridge name='vptr0'/><ip address='192.168.171.1' netmask='255.255.255.0'/></network>");
    expect((await virtplane('net-create', file)).stdout.trim()).toBe(`Network tr-net created from ${file}`);
    expect((await virtplane('net-list')).stdout).toMatch(/^ tr-net\s+active\s+no\s+no$/m);
    expect((await virtplane('net-info', 'tr-net')).stdout).toMatch(/^Persistent:\s+no$/m);
    const again = await virtplane('net-create', file);
    expect(again.code).toBe(1);
    // The document has no uuid, so it names a new network, as in libvirt: the name is taken.
    expect(again.stderr.trim()).toMatch(/^error: operation failed: network 'tr-net' already exists with uuid [0-9a-f-]{36} \[operation-failed\]$/);
    expect((await virtplane('net-destroy', 'tr-net')).code).toBe(0);
    expect((await virtplane('net-info', 'tr-net')).code).toBe(1);
    // Gone, so only the feed of every network still tells its story: started, stopped, never defined.
    const events = (await virtplane('net-event', '--history', '--loop', '--timeout', '2')).stdout.split('\n').filter((l) => l.includes('tr-net'));
    expect(events).toEqual(["event 'lifecycle' for network tr-net: Started", "event 'lifecycle' for network tr-net: Stopped"]);
    // The name is free again.
    expect((await virtplane('net-define', file)).stdout.trim()).toBe(`Network tr-net defined from ${file}`);
    expect((await virtplane('net-undefine', 'tr-net')).code).toBe(0);
  });

  it('net-dumpxml gives back every element of the defined XML, and defining it again changes nothing', async () => {
    const file = join(dir, 'dump.xml');
    await writeFile(file, NAT_XML.replace(/xml-net/g, 'dump-net').replace('3e3fce45-4f53-4fa7-bb32-11f34168b82b', 'a9c2d1e0-7f41-4b8e-9a3c-2d5e6f708192'));
    expect((await virtplane('net-define', file)).code).toBe(0);
    const xml = (await virtplane('net-dumpxml', 'dump-net')).stdout;
    for (const piece of [
      '<name>dump-net</name>',
      '<uuid>a9c2d1e0-7f41-4b8e-9a3c-2d5e6f708192</uuid>',
      "<forward mode='nat'>",
      "<port start='1024' end='65535'/>",
      "<bridge name='virbr9' stp='on' delay='0'/>",
      "<mac address='52:54:00:0a:cd:21'/>",
      "<domain name='example.org'/>",
      "<forwarder addr='8.8.8.8'/>",
      "<host ip='192.168.150.2'>",
      '<hostname>myhost</hostname>',
      "<ip address='192.168.150.1' netmask='255.255.255.0'>",
      "<range start='192.168.150.2' end='192.168.150.254'/>",
      "<host mac='52:54:00:6c:3c:01' name='vm1' ip='192.168.150.10'/>",
      "<ip family='ipv6' address='2001:db8:ca2:2::1' prefix='64'/>",
      "<route address='192.168.222.0' prefix='24' gateway='192.168.150.2'/>",
      "<portgroup name='engineering' default='yes'/>",
      "<vendorthing foo='bar'>kept as is</vendorthing>",
    ]) {
      expect(xml).toContain(piece);
    }
    await writeFile(file, xml);
    const again = JSON.parse((await virtplane('net-define', file, '--json')).stdout);
    expect(again.ok).toBe(true);
    expect((await virtplane('net-dumpxml', 'dump-net')).stdout).toBe(xml);
    const v = await stack.client.netGet('dump-net', { minVersion: again.version });
    expect(v.bridge).toBe('virbr9');
  });

  it('domiflist and domifaddr show what the domain definition says', async () => {
    const c = stack.client;
    await c.netDefine({ definition: { name: 'guests-net' } });
    await c.define({
      xml: `<domain type='test'><name>if-dom</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>
        <interface type='network'><mac address='52:54:00:11:22:33'/><source network='guests-net'/><model type='virtio'/></interface>
        <interface type='bridge'><source bridge='br0'/><target dev='tapfixed0'/></interface>
      </devices></domain>`,
    });
    const list = (await virtplane('domiflist', 'if-dom')).stdout.split('\n');
    expect(list[0]).toMatch(/^ Interface\s+Type\s+Source\s+Model\s+MAC$/);
    expect(list[1]).toMatch(/^-+$/);
    expect(list[2]).toMatch(/^ -\s+network\s+guests-net\s+virtio\s+52:54:00:11:22:33$/);
    expect(list[3]).toMatch(/^ tapfixed0\s+bridge\s+br0\s+-\s+52:54:00(:[0-9a-f]{2}){3}$/);
    const json = JSON.parse((await virtplane('domiflist', 'if-dom', '--json')).stdout);
    expect(json.interfaces).toHaveLength(2);

    const stopped = await virtplane('domifaddr', 'if-dom');
    expect(stopped.code).toBe(1);
    expect(stopped.stderr.trim()).toBe('error: Requested operation is not valid: domain is not running [operation-invalid]');
    await c.outcome(await c.start('if-dom'), 10_000);
    const addr = await virtplane('domifaddr', 'if-dom');
    expect(addr.stdout).toMatch(/^ Name\s+MAC address\s+Protocol\s+Address\n-+\n$/);
    expect(JSON.parse((await virtplane('domifaddr', 'if-dom', '--json')).stdout).interfaces).toEqual([]);
  });

  it('keeps the views across a projector restart', async () => {
    const c = stack.client;
    const d = await c.netDefine({ definition: { name: 'durable-net' } });
    const s = await c.netStart('durable-net');
    await c.netGet('durable-net', { minVersion: s.version });
    // The view is answered from memory first and stored just after: kill only once it is stored.
    const kv = await stack.nats.nats.kvm.open('views-networks');
    const stored = async () => {
      const e = await kv.get(d.networkId);
      return e?.operation === 'PUT' ? (decodeJson(e.value) as { version: number }).version : 0;
    };
    for (const end = Date.now() + 10_000; (await stored()) < s.version && Date.now() < end; ) await new Promise((r) => setTimeout(r, 25));
    await stack.kill('projector');
    await stack.start('projector');
    // Served from the stored views at once, without waiting for the log.
    const v = await c.netGet('durable-net', { waitMs: 0 });
    expect(v).toMatchObject({ id: d.networkId, active: true, version: s.version });
  });

  const badCases: Array<[string, string, string, string, RegExp]> = [
    ['malformed JSON', 'cmd.network.define', '{"definition": {', 'invalid-arg', /^malformed JSON/],
    ['both definition and xml', 'cmd.network.define', '{"definition": {}, "xml": "<network/>"}', 'invalid-arg', /exactly one/],
    ['neither definition nor xml', 'cmd.network.define', '{}', 'invalid-arg', /exactly one/],
    ['name with a slash', 'cmd.network.define', '{"definition": {"name": "a/b"}}', 'invalid-arg', /name/],
    ['bad uuid', 'cmd.network.define', '{"definition": {"name": "x", "uuid": "nope"}}', 'invalid-arg', /uuid/],
    ['unknown forward mode', 'cmd.network.define', '{"definition": {"name": "x", "forward": {"mode": "teleport"}}}', 'invalid-arg', /forward/],
    [
      'DHCP range outside its subnet',
      'cmd.network.define',
      '{"definition": {"name": "x", "ips": [{"address": "10.1.0.1", "prefix": 24, "dhcp": {"ranges": [{"start": "10.2.0.2", "end": "10.2.0.9"}]}}]}}',
      'invalid-arg',
      /not entirely within network 10\.1\.0\.1\/24/,
    ],
    ['missing network', 'cmd.network.start', '{}', 'invalid-arg', /network/],
    ['wrong type', 'cmd.network.destroy', '{"network": 42}', 'invalid-arg', /network/],
    ['bad autostart flag', 'cmd.network.autostart', '{"network": "x", "enable": "sure"}', 'invalid-arg', /enable/],
    ['bad command id', 'cmd.network.start', '{"network": "x", "commandId": "has spaces in it"}', 'invalid-arg', /commandId/],
    ['bad query', 'query.network.get', '{"network": ""}', 'invalid-arg', /network/],
    ['unclosed XML', 'cmd.network.define', JSON.stringify({ xml: '<network><name>x</name>' }), 'xml-error', /./],
    ['wrong XML root', 'cmd.network.define', JSON.stringify({ xml: '<domain><name>x</name></domain>' }), 'xml-error', /<network>/],
    ['XML without a name', 'cmd.network.define', JSON.stringify({ xml: '<network/>' }), 'xml-error', /name/],
    [
      'external entity',
      'cmd.network.define',
      JSON.stringify({ xml: '<?xml version="1.0"?><!DOCTYPE n [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><network><name>&xxe;</name></network>' }),
      'xml-error',
      /./,
    ],
    ['bad netmask', 'cmd.network.define', JSON.stringify({ xml: "<network><name>x</name><ip address='10.0.0.1' netmask='255.0.255.0'/></network>" }), 'xml-error', /netmask/],
  ];
  for (const [label, subject, body, code, message] of badCases) {
    it(`bad input (${label}): ${code}, nothing stored`, async () => {
      const before = await lastSeq();
      const reply = await raw(subject, body);
      expect(reply.ok).toBe(false);
      expect(reply.error?.code).toBe(code);
      expect(reply.error?.message).toMatch(message);
      expect(await lastSeq()).toBe(before);
    });
  }

  it("net-dhcp-leases asks every live host; a host running no dnsmasq has none, and an unknown network is virsh's two lines", async () => {
    await stack.client.netDefine({ xml: "<network><name>lease-net</name><ip address='192.168.153.1' netmask='255.255.255.0'><dhcp><range start='192.168.153.10' end='192.168.153.20'/></dhcp></ip></network>" });
    const empty = await virtplane('net-dhcp-leases', 'lease-net');
    expect(empty).toMatchObject({ code: 0, stdout: ` Expiry Time   MAC address   Protocol   IP address   Hostname   Client ID or DUID\n${'-'.repeat(83)}\n` });
    const missing = await virtplane('net-dhcp-leases', 'no-such-net');
    expect(missing).toMatchObject({ code: 1, stderr: "error: failed to get network 'no-such-net'\nerror: Network not found: no network with matching name 'no-such-net' [no-network]\n" });
    await stack.client.netUndefine('lease-net');
  });

  it('the CLI reports a malformed JSON file as a usage error, and the services keep answering', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, '{"name": ');
    const r = await virtplane('net-define', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/malformed JSON/);
    expect(Array.isArray(await stack.client.netList({ all: true }))).toBe(true);
  });
});

describe('provisioning', () => {
  it('adds the network lifecycle subject to a LIFECYCLE stream made before networks existed', async () => {
    const { startTestNats } = await import('./fixtures/nats.ts');
    const { provision } = await import('../platform/provision.ts');
    const t = await startTestNats();
    try {
      await t.nats.jsm.streams.update('LIFECYCLE', { subjects: ['lifecycle.>'] });
      await provision(t.nats);
      expect((await t.nats.jsm.streams.info('LIFECYCLE')).config.subjects).toEqual(['lifecycle.>', 'netlifecycle.>']);
    } finally {
      await t.stop();
    }
  });
});
