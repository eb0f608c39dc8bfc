import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { subjects } from '../contracts/subjects.ts';
import { EventStore } from '../platform/event-store.ts';
import { CLI, virtplane as cli } from './fixtures/cli.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole } from './fixtures/guest/build.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const availability = await qemuAvailable();
const run = promisify(execFile);

/**
 * send-key, inject-nmi and blockresize on a real qemu guest: the tiny guest (vp.keys=1) says on its console which
 * key its PS/2 keyboard saw pressed and (vp.blksize=1) its disks' sizes, and its kernel says when an
 * NMI came that nothing claimed.
 */
describe.skipIf(!availability.ok)('send-key and inject-nmi reach a real qemu guest', () => {
  let stack: Stack;
  let dir: string;
  let consoleLog: string;
  let image: string;
  let env: Record<string, string>;
  const virtplane = (...args: string[]) => cli(env, ...args);

  beforeAll(async () => {
    const guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-keys-'));
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
    const file = join(dir, 'keys.xml');
    image = join(dir, 'data.img');
    await writeFile(image, Buffer.alloc(0));
    await truncate(image, 8 * 1024 * 1024);
    const disk = `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${image}'/><target dev='vda' bus='virtio'/></disk>`;
    await writeFile(file, tinyGuestXml(guest, { name: 'keys', type: availability.kvm ? 'kvm' : 'qemu', extraCmdline: 'vp.keys=1 vp.disk=1 vp.blksize=1', devicesXml: disk }));
    expect((await virtplane('define', file)).code).toBe(0);
    const uuid = (await stack.client.get('keys')).id;
    consoleLog = join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'console.log');
  }, 300_000);
  afterAll(async () => {
    await stack?.client.destroy('keys').then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses a shut off guest, and a key qemu cannot be given, in libvirt words', { timeout: 60_000 }, async () => {
    expect((await virtplane('send-key', 'keys', 'KEY_A')).stderr.trim()).toBe('error: Requested operation is not valid: domain is not running [operation-invalid]');
    expect((await virtplane('inject-nmi', 'keys')).stderr.trim()).toBe('error: Requested operation is not valid: domain is not running [operation-invalid]');
    // qemuDomainSendKey translates before it looks at the domain: a mouse button has no scancode.
    expect((await virtplane('send-key', 'keys', 'BTN_LEFT')).stderr.trim()).toBe('error: internal error: cannot translate keycode 272 of linux codeset to qnum keycode [internal-error]');
    expect((await virtplane('blockresize', 'keys', 'vda', '16M')).stderr.trim()).toBe(
      "error: Failed to resize block device 'vda'\nerror: Requested operation is not valid: domain is not running [operation-invalid]",
    );
  });

  it('the guest sees the keys pressed, by name, by number and in qemu numbers', { timeout: 300_000 }, async () => {
    expect((await virtplane('start', 'keys', '--timeout', '120')).code).toBe(0);
    await waitForConsole(consoleLog, READY_MARKER, { timeoutMs: 120_000 });
    expect(await virtplane('send-key', 'keys', 'KEY_A')).toEqual({ code: 0, stdout: '\n', stderr: '' });
    await waitForConsole(consoleLog, 'virtplane-guest: key 30 pressed', { timeoutMs: 30_000 });
    // An extended key (0xe0-prefixed on the wire) given in qemu's numbering, and two keys at once.
    expect((await virtplane('send-key', 'keys', '--codeset', 'qnum', '0xc8')).code).toBe(0);
    await waitForConsole(consoleLog, 'virtplane-guest: key 103 pressed', { timeoutMs: 30_000 });
    expect((await virtplane('send-key', 'keys', '--codeset', 'xt', '--holdtime', '200', '48', '46')).code).toBe(0);
    const text = await waitForConsole(consoleLog, 'virtplane-guest: key 46 pressed', { timeoutMs: 30_000 });
    expect(text).toContain('virtplane-guest: key 48 pressed');
    // Each press once: one request, one key down.
    expect(text.split('virtplane-guest: key 30 pressed').length - 1).toBe(1);
  });

  it("inject-nmi: the guest's kernel reports the NMI on its console", { timeout: 120_000 }, async () => {
    expect(await virtplane('inject-nmi', 'keys')).toEqual({ code: 0, stdout: '\n', stderr: '' });
    const text = await waitForConsole(consoleLog, 'NMI received for unknown reason', { timeoutMs: 30_000 });
    expect(text.split('NMI received for unknown reason').length - 1).toBe(1);
    expect((await stack.client.get('keys')).observed.state).toBe('running');
  });

  it('blockresize grows the image under the running guest, which sees the new size; the definition stays', { timeout: 120_000 }, async () => {
    const xmlBefore = (await virtplane('dumpxml', 'keys', '--inactive')).stdout;
    const versionBefore = (await stack.client.get('keys')).version;
    await waitForConsole(consoleLog, 'virtplane-guest: sizes [vda=16384 ]', { timeoutMs: 30_000 });
    const refused: Array<[string[], number, string]> = [
      [['blockresize', 'keys', 'vdz', '16M'], 1, "error: Failed to resize block device 'vdz'\nerror: invalid argument: disk 'vdz' was not found in the domain config [invalid-arg]"],
      [['blockresize', 'keys', 'vda', '-5'], 2, "error: Scaled numeric value '-5' for <size> option is malformed or out of range"],
      [['blockresize', 'keys', 'vda', '16Q'], 2, "error: Scaled numeric value '16Q' for <size> option is malformed or out of range"],
      [['blockresize', '*', 'vda', '16M'], 1, ''],
    ];
    for (const [args, code, err] of refused) {
      const r = await virtplane(...args);
      expect([args.join(' '), r.code]).toEqual([args.join(' '), code]);
      if (err) expect(r.stderr.trim()).toBe(err);
    }
    expect((await stack.client.get('keys')).version).toBe(versionBefore);
    // By source path, and by target: 16 MiB, then 24 MiB (a bare number is KiB, as virsh reads it).
    expect(await virtplane('blockresize', 'keys', image, '16M')).toEqual({ code: 0, stdout: `Block device '${image}' is resized\n`, stderr: '' });
    expect((await stat(image)).size).toBe(16 * 1024 * 1024);
    await waitForConsole(consoleLog, 'virtplane-guest: sizes [vda=32768 ]', { timeoutMs: 30_000 });
    expect((await virtplane('blockresize', 'keys', 'vda', '24576')).code).toBe(0);
    await waitForConsole(consoleLog, 'virtplane-guest: sizes [vda=49152 ]', { timeoutMs: 30_000 });
    expect((await virtplane('domblkinfo', 'keys', 'vda')).stdout).toMatch(/^Capacity:\s+25165824$/m);
    expect((await virtplane('dumpxml', 'keys', '--inactive')).stdout).toBe(xmlBefore);
    const recorded = (await new EventStore(stack.nats.nats).read(subjects.aggregate('domain', (await stack.client.get('keys')).id)))
      .flatMap((c) => c.events)
      .filter((e) => e.type === 'DomainBlockResizeRequested')
      .map((e) => e.data as { target?: string; bytes?: number });
    expect(recorded.map((d) => [d.target, d.bytes])).toEqual([['vda', 16 * 1024 * 1024], ['vda', 24 * 1024 * 1024]]);
  });

  it('screenshot: the picture of a guest with a display comes back as a PPM; a guest without one has no screens', { timeout: 300_000 }, async () => {
    expect((await virtplane('screenshot', 'keys', join(dir, 'x.ppm'))).stderr.trim()).toBe(
      'error: could not take a screenshot of keys\nerror: Requested operation is not valid: no screens to take screenshot from [operation-invalid]',
    );
    const guest = await buildTinyGuest();
    const file = join(dir, 'screen.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'screen', type: availability.kvm ? 'kvm' : 'qemu', devicesXml: "<graphics type='vnc' autoport='yes'/>" }));
    expect((await virtplane('define', file)).code).toBe(0);
    expect((await virtplane('start', 'screen', '--timeout', '120')).code).toBe(0);
    try {
      expect((await virtplane('screenshot', 'screen', join(dir, 'y.ppm'), '--screen', '1')).stderr.trim()).toBe(
        'error: could not take a screenshot of screen\nerror: invalid argument: no such screen ID: 1 [invalid-arg]',
      );
      // No file named: virsh's <domain>-<date>.ppm in the current directory.
      const shotDir = await mkdtemp(join(dir, 'shots-'));
      const r = await run(process.execPath, [CLI, 'screenshot', 'screen'], { cwd: shotDir, env: { ...process.env, ...env } });
      const name = /^Screenshot saved to (screen-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.ppm), with type of image\/x-portable-pixmap$/.exec(r.stdout.trim())?.[1];
      expect(name, r.stdout).toBeDefined();
      const image = await readFile(join(shotDir, name!));
      const header = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(image.subarray(0, 32).toString('latin1'));
      expect(header, image.subarray(0, 32).toString('latin1')).not.toBeNull();
      const [w, h] = [Number(header![1]), Number(header![2])];
      expect(w * h).toBeGreaterThan(0);
      // The whole picture came over, in several pieces.
      expect(image.length).toBe(header![0].length + w * h * 3);
      expect(image.length).toBeGreaterThan(256 * 1024);
    } finally {
      await stack.client.destroy('screen').then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    }
  });
});
