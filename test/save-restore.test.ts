import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, testDriverState, type Stack } from './fixtures/stack.ts';
import { virtplane } from './fixtures/cli.ts';
import { testImageHeader } from '../drivers/save-image.ts';

/**
 * save and restore on the test driver with everything a principal could get wrong or do on purpose:
 * hostile paths and images change nothing, a command sent twice saves once, and an agent killed in
 * the middle of a save saves the guest once it is back.
 */
describe('save and restore against bad input and faults', () => {
  let stack: Stack;
  let env: Record<string, string>;
  let saveDir: string;
  beforeAll(async () => {
    // Every operation takes a moment, so the agent can be killed while one is in flight.
    stack = await startStack({ env: { VIRTPLANE_TEST_LATENCY_MS: '300' } });
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
    saveDir = join(stack.dataDir, 'hosts', stack.hostId, 'save');
    await mkdir(saveDir, { recursive: true });
  });
  afterAll(async () => stack?.stop());

  const running = async (name: string) => {
    await virtplane(env, 'define', '--name', name, '--memory', '64');
    expect((await virtplane(env, 'start', name)).code).toBe(0);
  };
  const domstate = async (name: string) => (await virtplane(env, 'domstate', name, '--reason')).stdout.trim();

  it('refuses relative, unnormalised and outside paths and links out of the image directory, changing nothing', { timeout: 120_000 }, async () => {
    await running('sr-bad');
    const relative = await virtplane(env, 'save', 'sr-bad', 'images/sr-bad.sav');
    expect([relative.code, relative.stderr]).toEqual([1, expect.stringMatching(/^error: Failed to save domain 'sr-bad' to images\/sr-bad.sav\nerror: invalid argument: .*not an absolute path.* \[invalid-arg\]\n$/)]);
    for (const name of ['..', '.']) expect((await virtplane(env, 'save', 'sr-bad', name)).stderr).toMatch(/not a file name.*\[invalid-arg\]/);
    const dotdot = await virtplane(env, 'save', 'sr-bad', `${saveDir}/../../../../etc/sr-bad`);
    expect(dotdot.stderr).toMatch(/not a normalised path.*\[invalid-arg\]/);
    const outside = await virtplane(env, 'save', 'sr-bad', '/etc/virtplane-sr-bad');
    expect(outside.stderr).toMatch(/is outside the directories for saved images.*\[invalid-arg\]/);
    expect(existsSync('/etc/virtplane-sr-bad')).toBe(false);
    await symlink('/etc', join(saveDir, 'etc'));
    const escape = await virtplane(env, 'save', 'sr-bad', join(saveDir, 'etc', 'virtplane-sr-bad'));
    expect(escape.stderr).toMatch(/through a link.*\[invalid-arg\]/);
    expect(existsSync('/etc/virtplane-sr-bad')).toBe(false);
    const peek = await virtplane(env, 'save-image-dumpxml', '/etc/passwd');
    expect(peek.stderr).toMatch(/outside the directories for saved images.*\[invalid-arg\]/);
    expect(await domstate('sr-bad')).toBe('running (booted)');
    const history = JSON.parse((await virtplane(env, 'dominfo', 'sr-bad', '--json')).stdout) as { lastError: { code: string } | null };
    expect(history.lastError?.code).toBe('invalid-arg');
  });

  it('refuses hostile and broken images with structured errors and defines nothing', { timeout: 120_000 }, async () => {
    const laughs = `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><domain type='test'><name>&c;</name><memory>8192</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;
    const hostile = join(saveDir, 'hostile.sav');
    await writeFile(hostile, testImageHeader(laughs));
    const r = await virtplane(env, 'restore', hostile);
    expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/^error: Failed to restore domain from .*\nerror: XML error: .*\[xml-error\]\n$/)]);
    const big = join(saveDir, 'big.sav');
    const len = Buffer.alloc(4);
    len.writeInt32LE(100_000);
    await writeFile(big, Buffer.concat([Buffer.from('TestGuestMagic\0', 'latin1'), len, Buffer.alloc(64, 0x41)]));
    expect((await virtplane(env, 'restore', big)).stderr).toMatch(/error: internal error: length of metadata out of range \[internal-error\]/);
    const junk = join(saveDir, 'junk.sav');
    await writeFile(junk, 'not an image');
    expect((await virtplane(env, 'restore', junk)).stderr).toMatch(/error: internal error: mismatched header magic \[internal-error\]/);
    await symlink(hostile, join(saveDir, 'link.sav'));
    expect((await virtplane(env, 'restore', join(saveDir, 'link.sav'))).stderr).toMatch(/cannot read domain image .*Too many levels of symbolic links/);
    expect((await virtplane(env, 'list', '--all', '--name')).stdout).not.toMatch(/aaaa/);
  });

  it('a bare file name is a file in the host\'s image directory, for save, save-image-dumpxml and restore', { timeout: 120_000 }, async () => {
    await running('sr-bare');
    expect(await virtplane(env, 'save', 'sr-bare', 'sr-bare.sav')).toMatchObject({ code: 0, stdout: "Domain 'sr-bare' saved to sr-bare.sav\n" });
    expect(existsSync(join(saveDir, 'sr-bare.sav'))).toBe(true);
    expect((await virtplane(env, 'save-image-dumpxml', 'sr-bare.sav')).stdout).toContain('<name>sr-bare</name>');
    expect((await virtplane(env, 'restore', 'sr-bare.sav')).code).toBe(0);
    expect(await domstate('sr-bare')).toBe('running (restored)');
  });

  it('a save sent twice with one command id saves once', { timeout: 120_000 }, async () => {
    await running('sr-dup');
    const image = join(saveDir, 'sr-dup.sav');
    const first = await stack.client.save('sr-dup', image, { commandId: 'sr-dup-save-1' });
    const again = await stack.client.save('sr-dup', image, { commandId: 'sr-dup-save-1' });
    expect(again).toMatchObject({ duplicate: true, version: first.version, taskId: first.taskId });
    expect((await stack.client.outcomeOrGone(first, 30_000))?.observed).toEqual({ state: 'shutoff', reason: 'saved' });
    expect((await readFile(image)).subarray(0, 14).toString()).toBe('TestGuestMagic');
  });

  it('an agent killed in the middle of a save saves the guest once it is back, and restore starts it from the image without booting it', { timeout: 180_000 }, async () => {
    await running('sr-kill');
    const boots = (await testDriverState(stack)).find((g) => g.name === 'sr-kill')!.boots;
    const image = join(saveDir, 'sr-kill.sav');
    const accepted = await stack.client.save('sr-kill', image, { timeoutSeconds: 120 });
    await new Promise((r) => setTimeout(r, 150));
    await stack.kill('host-agent', 'SIGKILL');
    await stack.start('host-agent');
    expect((await stack.client.outcome(accepted, 60_000)).observed).toEqual({ state: 'shutoff', reason: 'saved' });
    expect(existsSync(join(saveDir, '.sr-kill.sav.part'))).toBe(false);
    expect((await virtplane(env, 'restore', image)).stdout.trim()).toBe(`Domain restored from ${image}`);
    expect(await domstate('sr-kill')).toBe('running (restored)');
    expect((await testDriverState(stack)).find((g) => g.name === 'sr-kill')!.boots).toBe(boots);
    const events = (await virtplane(env, 'event', '--domain', 'sr-kill', '--all', '--history', '--loop', '--timeout', '1')).stdout.trim().split('\n');
    expect(events).toContain('events received: 4');
    expect(events.slice(0, 4)).toEqual([
      "event 'lifecycle' for domain 'sr-kill': Defined Added",
      "event 'lifecycle' for domain 'sr-kill': Started Booted",
      "event 'lifecycle' for domain 'sr-kill': Stopped Saved",
      "event 'lifecycle' for domain 'sr-kill': Started Restored",
    ]);
  });
});
