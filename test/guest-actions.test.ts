import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EventStore } from '../platform/event-store.ts';
import { subjects } from '../contracts/subjects.ts';
import { virtplane } from './fixtures/cli.ts';
import { startStack, testDriverState, type Stack } from './fixtures/stack.ts';

/** The test driver's own domain, as `virsh -c test:///default` has it; the expectations were taken from virsh 9.0 there. */
const XML = `<domain type='test'><name>keys1</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;

describe('send-key, inject-nmi and blockresize on the test driver, as virsh', () => {
  let stack: Stack;
  let env: Record<string, string>;
  let uuid: string;
  const guest = async () => (await testDriverState(stack)).find((g) => g.name === 'keys1') as unknown as { keysPressed?: number; nmis?: number; state: string };
  const intents = async () =>
    (await new EventStore(stack.nats.nats).read(subjects.aggregate('domain', uuid)))
      .flatMap((c) => c.events)
      .filter((e) => e.type === 'DomainSendKeyRequested' || e.type === 'DomainNmiInjectRequested');
  beforeAll(async () => {
    stack = await startStack({ env: { VIRTPLANE_TEST_LATENCY_MS: '1500' } });
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
    const file = join(stack.dataDir, 'keys1.xml');
    await writeFile(file, XML);
    expect((await virtplane(env, 'define', file)).code).toBe(0);
    uuid = (await stack.client.get('keys1')).id;
  }, 60_000);
  afterAll(async () => stack?.stop());

  it('refuses a domain that is not running, and bad input, in virsh words, recording nothing', { timeout: 60_000 }, async () => {
    const before = (await stack.client.get('keys1')).version;
    const cases: Array<[string[], number, string]> = [
      [['send-key', 'keys1', 'KEY_A'], 1, 'error: Requested operation is not valid: domain is not running [operation-invalid]'],
      [['inject-nmi', 'keys1'], 1, 'error: Requested operation is not valid: domain is not running [operation-invalid]'],
      [['send-key', 'keys1', 'KEY_FOO'], 2, "error: invalid keycode: 'KEY_FOO'"],
      [['send-key', 'keys1', '--', '-1'], 2, "error: invalid keycode: '-1'"],
      [['send-key', 'keys1', '--codeset', 'xt', 'KEY_A'], 2, "error: invalid keycode: 'KEY_A'"],
      [['send-key', 'keys1', '--codeset', 'foo', '30'], 2, "error: unknown codeset: 'foo'"],
      [['send-key', 'keys1', '--holdtime', '-5', 'KEY_A'], 2, "error: Numeric value '-5' for <holdtime> option is malformed or out of range"],
      [['send-key', 'keys1', ...Array.from({ length: 17 }, (_, i) => `KEY_${String.fromCharCode(65 + i)}`)], 2, 'error: too many keycodes'],
      [['send-key', 'nosuch', 'KEY_A'], 1, "error: failed to get domain 'nosuch' [no-domain]"],
      [['inject-nmi', 'nosuch'], 1, "error: failed to get domain 'nosuch' [no-domain]"],
      // libvirt's test driver has no virDomainBlockResize, running or not.
      [['blockresize', 'keys1', 'vda', '10M'], 1, "error: Failed to resize block device 'vda'\nerror: this function is not supported by the connection driver: virDomainBlockResize [operation-unsupported]"],
    ];
    for (const [args, code, err] of cases) {
      const r = await virtplane(env, ...args);
      expect([args.join(' '), r.code, r.stderr.trim()]).toEqual([args.join(' '), code, err]);
    }
    // A wildcard or subject token as the domain never reaches a subject or a domain.
    for (const name of ['*', 'web>', 'a.b.*']) {
      const r = await virtplane(env, 'send-key', name, 'KEY_A');
      expect(r.code).not.toBe(0);
    }
    expect((await stack.client.get('keys1')).version).toBe(before);
    expect(await intents()).toEqual([]);
  });

  it('presses keys and sends NMIs to a running guest, each recorded with who asked', { timeout: 60_000 }, async () => {
    expect((await virtplane(env, 'start', 'keys1')).code).toBe(0);
    expect(await virtplane(env, 'send-key', 'keys1', 'KEY_LEFTCTRL', 'KEY_LEFTALT', 'KEY_DELETE')).toEqual({ code: 0, stdout: '\n', stderr: '' });
    expect(await virtplane(env, 'send-key', 'keys1', '--codeset', 'qnum', '--holdtime', '50', '0x1e', '0xc8')).toEqual({ code: 0, stdout: '\n', stderr: '' });
    expect(await virtplane(env, 'inject-nmi', 'keys1')).toEqual({ code: 0, stdout: '\n', stderr: '' });
    expect(await guest()).toMatchObject({ keysPressed: 5, nmis: 1, state: 'running' });
    const recorded = await intents();
    expect(recorded.map((e) => [e.type, (e.data as { keys?: unknown }).keys ?? null])).toEqual([
      ['DomainSendKeyRequested', { codeset: 'linux', keycodes: [29, 56, 111] }],
      ['DomainSendKeyRequested', { codeset: 'qnum', keycodes: [0x1e, 0xc8], holdtimeMs: 50 }],
      ['DomainNmiInjectRequested', null],
    ]);
    for (const e of recorded) expect(e.actor).toBeTruthy();
    // The driver checks keys against its codeset, as testDomainSendKey: nothing recorded for a bad one.
    const bad = await virtplane(env, 'send-key', 'keys1', '--codeset', 'linux', '1000');
    expect([bad.code, bad.stderr.trim()]).toEqual([1, 'error: internal error: invalid keycode 1000 of linux codeset [internal-error]']);
    const bad2 = await virtplane(env, 'send-key', 'keys1', '--codeset', 'xt_kbd', '0xe05b');
    expect(bad2.stderr.trim()).toBe('error: internal error: invalid keycode 57435 of xt_kbd codeset [internal-error]');
    expect(await intents()).toHaveLength(3);
  });

  it('one command id is one press, however often it is sent', { timeout: 60_000 }, async () => {
    const before = (await guest()).keysPressed ?? 0;
    const commandId = `dup-${Date.now()}`;
    const a = await stack.client.sendKey('keys1', { keycodes: [30] }, { commandId });
    const b = await stack.client.sendKey('keys1', { keycodes: [30] }, { commandId });
    expect(b.version).toBe(a.version);
    expect(b.duplicate).toBe(true);
    await stack.client.outcome(a, 30_000);
    expect((await guest()).keysPressed).toBe(before + 1);
    expect((await intents()).filter((e) => e.commandId === commandId)).toHaveLength(1);
  });

  it('an agent killed mid-task does not press the keys or send the NMI a second time', { timeout: 90_000 }, async () => {
    const before = await guest();
    const journal = join(stack.dataDir, 'hosts', stack.hostId, 'tasks.jsonl');
    for (const send of [() => stack.client.sendKey('keys1', { keycodes: [30, 48] }), () => stack.client.injectNmi('keys1')]) {
      const accepted = await send();
      // The driver's latency holds the task after the journal says it started: the agent dies there.
      for (let i = 0; i < 100 && !(await readFile(journal, 'utf8').catch(() => '')).includes(accepted.taskId!); i++) await new Promise((r) => setTimeout(r, 50));
      await stack.kill('host-agent');
      await stack.start('host-agent');
      const v = await stack.client.outcome(accepted, 30_000);
      expect(v.observed.state).toBe('running');
    }
    // Redelivered after the crash, neither was carried out again (nor, here, at all: the kill came first).
    expect(await guest()).toMatchObject({ keysPressed: before.keysPressed, nmis: before.nmis, state: 'running' });
    // Without a crash the next one is carried out once.
    await stack.client.outcome(await stack.client.injectNmi('keys1'), 30_000);
    expect((await guest()).nmis).toBe((before.nmis ?? 0) + 1);
  });

  it("screenshot: the test driver's picture, taken on the host, recorded, and saved here as virsh says", { timeout: 60_000 }, async () => {
    const file = join(stack.dataDir, 'shot.png');
    expect(await virtplane(env, 'screenshot', 'keys1', file)).toEqual({ code: 0, stdout: `Screenshot saved to ${file}, with type of image/png\n`, stderr: '' });
    expect((await readFile(file)).subarray(1, 4).toString()).toBe('PNG');
    const shots = (await new EventStore(stack.nats.nats).read(subjects.aggregate('domain', uuid))).flatMap((c) => c.events).filter((e) => e.type === 'DomainScreenshotRequested');
    expect(shots).toHaveLength(1);
    expect(shots[0]!.actor).toBeTruthy();
    // Only principals allowed the host's live readings get the picture: an auditor may not ask.
    const { permissionsFor } = await import('../platform/security/roles.ts');
    const allowed = (role: 'operator' | 'auditor') => permissionsFor(role, 'p').publish.allow!.some((a) => a === 'hostread.*.*' || a.startsWith('hostread.'));
    expect([allowed('operator'), allowed('auditor')]).toEqual([true, false]);
    const bad = await virtplane(env, 'screenshot', 'keys1', file, '--screen', '-1');
    expect([bad.code, bad.stderr.trim()]).toEqual([2, "error: Numeric value '-1' for <screen> option is malformed or out of range"]);
  });
});
