import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { virtplane as cli } from './fixtures/cli.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole } from './fixtures/guest/build.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const availability = await qemuAvailable();

/**
 * send-key and inject-nmi on a real qemu guest: the tiny guest (vp.keys=1) says on its console which
 * key its PS/2 keyboard saw pressed, and its kernel says when an NMI came that nothing claimed.
 */
describe.skipIf(!availability.ok)('send-key and inject-nmi reach a real qemu guest', () => {
  let stack: Stack;
  let dir: string;
  let consoleLog: string;
  let env: Record<string, string>;
  const virtplane = (...args: string[]) => cli(env, ...args);

  beforeAll(async () => {
    const guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-keys-'));
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
    const file = join(dir, 'keys.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'keys', type: availability.kvm ? 'kvm' : 'qemu', extraCmdline: 'vp.keys=1' }));
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
});
