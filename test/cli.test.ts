import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../platform/config.ts';
import { virtplane } from './fixtures/cli.ts';
import { startStack, testDriverState, type Stack } from './fixtures/stack.ts';
import { startEmbedded } from './fixtures/embedded.ts';

const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');

describe('virtplane CLI against a running system', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack();
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
  });
  afterAll(async () => stack?.stop());

  it('speaks virsh: define, start, list, domstate, dominfo, suspend, resume, destroy, undefine', { timeout: 240_000 }, async () => {
    expect((await virtplane(env, 'define', '--name', 'cli-1', '--memory', '128', '--vcpus', '2')).stdout.trim()).toBe("Domain 'cli-1' defined");
    expect((await virtplane(env, 'start', 'cli-1')).stdout.trim()).toBe("Domain 'cli-1' started");
    const list = await virtplane(env, 'list');
    expect(list.stdout).toMatch(/^ Id\s+Name\s+State\n-+\n \d+\s+cli-1\s+running\n$/);
    expect((await virtplane(env, 'list', '--host')).stdout).toMatch(/^ Id\s+Name\s+State\s+Host\s+UUID\n-+\n \d+\s+cli-1\s+running\s+host-a\s+[0-9a-f-]{36}\n$/);
    expect((await virtplane(env, 'list', '--name')).stdout).toBe('cli-1\n');
    // virsh's ids: a number while running, found again by domname; the uuid by name.
    const domid = (await virtplane(env, 'domid', 'cli-1')).stdout.trim();
    expect(domid).toMatch(/^\d+$/);
    expect((await virtplane(env, 'domname', domid)).stdout.trim()).toBe('cli-1');
    const uuid = (await virtplane(env, 'domuuid', 'cli-1')).stdout.trim();
    expect((await virtplane(env, 'list', '--uuid')).stdout.trim()).toBe(uuid);
    expect((await virtplane(env, 'list', '--state-shutoff', '--name')).stdout.trim()).toBe('');
    const twice = await virtplane(env, 'start', 'cli-1');
    expect(twice.code).toBe(1);
    expect(twice.stderr.trim()).toBe('error: Domain is already active [operation-invalid]');
    expect((await virtplane(env, 'domstate', 'cli-1', '--reason')).stdout.trim()).toBe('running (booted)');
    expect(JSON.parse((await virtplane(env, 'domstate', 'cli-1', '--json')).stdout)).toEqual({ state: 'running', reason: 'booted', stateNumber: 1 });
    expect((await virtplane(env, 'suspend', 'cli-1')).stdout.trim()).toBe("Domain 'cli-1' suspended");
    expect((await virtplane(env, 'resume', 'cli-1')).stdout.trim()).toBe("Domain 'cli-1' resumed");
    const info = (await virtplane(env, 'dominfo', 'cli-1')).stdout;
    expect(info).toMatch(/^Name:\s+cli-1$/m);
    expect(info).toMatch(/^CPU\(s\):\s+2$/m);
    expect(info).toMatch(/^Max memory:\s+131072 KiB$/m);
    expect(info).toMatch(/^Id: {13}\d+\nName: {11}cli-1\n/);
    expect(info).not.toMatch(/^Host:/m);
    expect((await virtplane(env, 'dominfo', 'cli-1', '--extra')).stdout).toMatch(/^Host:\s+host-a$/m);
    const again = await virtplane(env, 'suspend', 'cli-1');
    await virtplane(env, 'suspend', 'cli-1').then((r) =>
      expect(r.stderr.trim().split('\n')).toEqual(["error: Failed to suspend domain 'cli-1'", "error: internal error: domain 'cli-1' not running [internal-error]"]),
    );
    expect(again.code).toBe(0);
    await virtplane(env, 'resume', 'cli-1');
    expect((await virtplane(env, 'destroy', 'cli-1')).stdout.trim()).toBe("Domain 'cli-1' destroyed");
    const json = JSON.parse((await virtplane(env, 'list', '--all', '--json')).stdout);
    expect(json).toEqual([expect.objectContaining({ name: 'cli-1', observed: { state: 'shutoff', reason: 'destroyed' } })]);
    const events = (await virtplane(env, 'event', '--all', '--history', '--loop', '--timeout', '2')).stdout.trim().split('\n');
    expect(events).toEqual([
      "event 'lifecycle' for domain 'cli-1': Defined Added",
      "event 'lifecycle' for domain 'cli-1': Started Booted",
      "event 'lifecycle' for domain 'cli-1': Suspended Paused",
      "event 'lifecycle' for domain 'cli-1': Resumed Unpaused",
      "event 'lifecycle' for domain 'cli-1': Suspended Paused",
      "event 'lifecycle' for domain 'cli-1': Resumed Unpaused",
      "event 'lifecycle' for domain 'cli-1': Stopped Destroyed",
      'event loop timed out',
      'events received: 7',
    ]);
    expect((await virtplane(env, 'undefine', 'cli-1')).stdout.trim()).toBe("Domain 'cli-1' has been undefined");
  });

  it("autostart, reset and managedsave as virsh says them; the agent starts its autostart domains when it starts", { timeout: 240_000 }, async () => {
    for (const n of ['cli-auto', 'cli-plain', 'cli-up']) await virtplane(env, 'define', '--name', n, '--memory', '64');
    expect((await virtplane(env, 'autostart', 'cli-auto')).stdout.trim()).toBe("Domain 'cli-auto' marked as autostarted");
    expect((await virtplane(env, 'autostart', 'cli-up')).stdout.trim()).toBe("Domain 'cli-up' marked as autostarted");
    expect((await virtplane(env, 'dominfo', 'cli-auto')).stdout).toMatch(/^Autostart: {6}enable$/m);
    expect((await virtplane(env, 'list', '--all', '--autostart', '--name')).stdout).toBe('cli-auto\ncli-up\n');
    expect((await virtplane(env, 'list', '--all', '--no-autostart', '--name')).stdout).toMatch(/^cli-plain$/m);
    const off = await virtplane(env, 'autostart', 'nosuch', '--disable');
    expect([off.code, off.stderr.trim()]).toEqual([1, "error: failed to get domain 'nosuch' [no-domain]"]);

    await virtplane(env, 'start', 'cli-up');
    const reset = await virtplane(env, 'reset', 'cli-plain');
    expect([reset.code, reset.stderr.trim().split('\n')]).toEqual([1, ["error: Failed to reset domain 'cli-plain'", 'error: Requested operation is not valid: domain is not running [operation-invalid]']]);
    expect((await virtplane(env, 'reset', 'cli-up')).stdout.trim()).toBe("Domain 'cli-up' was reset");
    const booted = (await testDriverState(stack)).find((g) => g.name === 'cli-up')!.boots;

    await virtplane(env, 'start', 'cli-plain');
    expect((await virtplane(env, 'managedsave', 'cli-plain')).stdout.trim()).toBe("Domain 'cli-plain' state saved by libvirt");
    expect((await virtplane(env, 'domstate', 'cli-plain', '--reason')).stdout.trim()).toBe('shut off (saved)');
    expect((await virtplane(env, 'dominfo', 'cli-plain')).stdout).toMatch(/^Managed save: {3}yes$/m);
    const undef = await virtplane(env, 'undefine', 'cli-plain');
    expect([undef.code, undef.stderr.trim()]).toEqual([1, 'error: Refusing to undefine while domain managed save image exists [operation-invalid]']);

    // The agent goes and comes back: only the autostart domain that was shut off is started, once.
    await stack.kill('host-agent', 'SIGTERM');
    await stack.start('host-agent');
    const deadline = Date.now() + 30_000;
    while ((await virtplane(env, 'domstate', 'cli-auto')).stdout.trim() !== 'running' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    expect((await virtplane(env, 'domstate', 'cli-auto', '--reason')).stdout.trim()).toBe('running (booted)');
    expect((await virtplane(env, 'domstate', 'cli-plain', '--reason')).stdout.trim()).toBe('shut off (saved)');
    const guests = await testDriverState(stack);
    expect(guests.find((g) => g.name === 'cli-up')?.boots).toBe(booted);
    expect(guests.find((g) => g.name === 'cli-auto')?.boots).toBe(1);
    const events = (await virtplane(env, 'event', '--domain', 'cli-auto', '--all', '--history', '--loop', '--timeout', '1')).stdout.trim().split('\n');
    expect(events.slice(0, 2)).toEqual(["event 'lifecycle' for domain 'cli-auto': Defined Added", "event 'lifecycle' for domain 'cli-auto': Started Booted"]);

    expect((await virtplane(env, 'undefine', 'cli-plain', '--managed-save')).stdout.trim()).toBe("Domain 'cli-plain' has been undefined");
    for (const n of ['cli-auto', 'cli-up']) {
      await virtplane(env, 'destroy', n);
      await virtplane(env, 'undefine', n);
    }
  });

  it('defines from libvirt XML and gives every element back with dumpxml', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vp-xml-'));
    const file = join(dir, 'dom.xml');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      file,
      `<domain type='test'><name>xml-cli</name><memory unit='GiB'>1</memory><vcpu current='1'>2</vcpu><os><type arch='x86_64'>hvm</type></os>
       <devices><interface type='network'><source network='default'/></interface><mystery foo='bar'>keep me</mystery></devices></domain>`,
    );
    expect((await virtplane(env, 'define', file)).stdout.trim()).toBe(`Domain 'xml-cli' defined from ${file}`);
    const xml = (await virtplane(env, 'dumpxml', 'xml-cli')).stdout;
    expect(xml).toMatch(/<memory unit='KiB'>1048576<\/memory>/);
    expect(xml).toMatch(/<vcpu placement='static' current='1'>2<\/vcpu>|<vcpu current='1' placement='static'>2<\/vcpu>/);
    expect(xml).toMatch(/<mac address='52:54:00(:[0-9a-f]{2}){3}'\/>/);
    expect(xml).toContain("<mystery foo='bar'>keep me</mystery>");
    // What dumpxml gives back defines the same domain again, unchanged.
    await writeFile(file, xml);
    expect((await virtplane(env, 'define', file)).code).toBe(0);
    expect((await virtplane(env, 'dumpxml', 'xml-cli')).stdout).toBe(xml);
    await writeFile(file, '<domain><name>broken</name>');
    const bad = await virtplane(env, 'define', file);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/\[xml-error\]/);
    await rm(dir, { recursive: true, force: true });
  });

  it('reports errors with the libvirt code and a non-zero exit', async () => {
    const r = await virtplane(env, 'start', 'no-such-domain');
    expect(r.code).toBe(1);
    // virsh's words for a domain it cannot look up; JSON keeps libvirt's message.
    expect(r.stderr.trim()).toBe("error: failed to get domain 'no-such-domain' [no-domain]");
    const j = await virtplane(env, 'start', 'no-such-domain', '--json');
    expect(JSON.parse(j.stdout)).toEqual({ ok: false, error: { code: 'no-domain', message: "Domain not found: no domain with matching name 'no-such-domain'" } });
    const usage = await virtplane(env, 'define', '--name', 'x');
    expect(usage.code).toBe(2);
  });

  it('host-list shows the agent alive', async () => {
    const r = await virtplane(env, 'host-list', '--json');
    expect(JSON.parse(r.stdout)).toEqual([expect.objectContaining({ hostId: 'host-a', alive: true, capabilities: expect.objectContaining({ domainTypes: expect.arrayContaining(['test']) }) })]);
  });

  it('nodeinfo, hostname, version and uri answer for the only host, or the one named', { timeout: 120_000 }, async () => {
    const info = (await virtplane(env, 'nodeinfo')).stdout;
    expect(info).toMatch(new RegExp(`^CPU\\(s\\): {14}${cpus().length}$`, 'm'));
    expect(info).toMatch(new RegExp(`^Memory size: {9}${Math.floor(totalmem() / 1024)} KiB$`, 'm'));
    expect(info).toMatch(/^CPU model: {11}\S+$/m);
    expect((await virtplane(env, 'hostname', '--host', 'host-a')).stdout.trim()).toBe(hostname());
    expect((await virtplane(env, 'version')).stdout).toMatch(/^Compiled against library: virtplane \S+\nUsing library: virtplane \S+\nUsing API: TEST /);
    expect((await virtplane(env, 'uri')).stdout.trim()).toBe(`nats://${new URL(stack.nats.url).host}`);
    const none = await virtplane(env, 'nodeinfo', '--host', 'no-such-host');
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no host with id 'no-such-host'/);
  });
});

describe('virtplane validate', () => {
  const corpus = join(PROJECT_ROOT, '..', 'shared', 'conformance', 'libvirt');
  it('prints one line per file and fails when any document is invalid, with no server at all', async () => {
    const good = join(corpus, 'network', 'networkxml2xmlin', 'nat-network.xml');
    const bad = join(corpus, 'domain-xml', 'no-memory.xml');
    const ok = await virtplane({ VIRTPLANE_NATS_URL: '' }, 'validate', good);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toBe(`${good}: ok (network 'default')`);
    const mixed = await virtplane({ VIRTPLANE_NATS_URL: '' }, 'validate', good, bad);
    expect(mixed.code).toBe(1);
    expect(mixed.stdout.trim().split('\n')).toEqual([`${good}: ok (network 'default')`, expect.stringMatching(new RegExp(`^${bad}: error: .*memory`, 'i'))]);
    const formatted = await virtplane({}, 'validate', '--format', good);
    expect(formatted.stdout).toContain("<bridge name='virbr0' stp='on' delay='0'/>");
  });
});

describe('the embedded default', () => {
  it('with nothing running, the CLI says how to start it instead of using a server on 4222', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'vp-empty-'));
    const r = await virtplane({ VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_NATS_URL: '' }, 'list');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^error: no NATS server: start the embedded default with `virtplane up`/);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('npm start brings up its own server and every service, and the CLI finds it with no flags', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'vp-embedded-'));
    const embedded = await startEmbedded({ VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_NATS_URL: '', VIRTPLANE_DRIVER: 'test', VIRTPLANE_HOST_ID: 'embedded-host' });
    const log = embedded.log();
    try {
      expect(log).not.toMatch(/127\.0\.0\.1:4222/);
      const env = { VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_NATS_URL: '' };
      expect((await virtplane(env, 'define', '--name', 'emb-1', '--memory', '64')).code).toBe(0);
      expect((await virtplane(env, 'start', 'emb-1')).stdout.trim()).toBe("Domain 'emb-1' started");
      const hosts = JSON.parse((await virtplane(env, 'host-list', '--json')).stdout);
      expect(hosts.map((h: { hostId: string }) => h.hostId)).toEqual(['embedded-host']);
    } finally {
      await embedded.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
