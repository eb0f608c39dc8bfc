import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAMS } from '../contracts/subjects.ts';
import { readBucket } from '../platform/kv-mirror.ts';
import { hasVirsh, virtplane as runCli } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const U1 = 'c4a7b1b2-1111-4c3e-9a9a-000000000001';
const U2 = 'c4a7b1b2-1111-4c3e-9a9a-000000000002';
const CEPH = `<secret ephemeral='no' private='no'>
  <uuid>${U1}</uuid>
  <description>ceph client</description>
  <usage type='ceph'><name>client.admin secret</name></usage>
</secret>
`;
/** A value no part of the system may ever show in clear (nor its base64). */
const MARKER = 'virtplane-canary-7f3a91c2e5';

describe('secrets through the CLI and the client', () => {
  let stack: Stack;
  let env: Record<string, string>;
  let dir: string;
  const cli = (...args: string[]) => runCli(env, ...args);
  const file = async (name: string, text: string | Buffer) => {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  };

  beforeAll(async () => {
    stack = await startStack({ services: ['command', 'projector'] });
    env = { VIRTPLANE_NATS_URL: stack.nats.url, VIRTPLANE_DATA_DIR: stack.dataDir };
    dir = await mkdtemp(join(tmpdir(), 'virtplane-secrets-'));
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("defines, lists, dumps, sets and gets a value, and undefines, in virsh's words", async () => {
    const f = await file('ceph.xml', CEPH);
    expect(await cli('secret-define', f)).toMatchObject({ code: 0, stdout: `Secret ${U1} created\n` });
    const list = await cli('secret-list');
    expect(list.stdout).toBe(
      [' UUID                                   Usage', '-'.repeat(66), ` ${U1}   ceph client.admin secret`, ''].join('\n'),
    );
    expect((await cli('secret-dumpxml', U1.toUpperCase())).stdout).toBe(
      `<secret ephemeral='no' private='no'>\n  <uuid>${U1}</uuid>\n  <description>ceph client</description>\n  <usage type='ceph'>\n    <name>client.admin secret</name>\n  </usage>\n</secret>\n`,
    );
    const noValue = await cli('secret-get-value', U1);
    expect(noValue).toMatchObject({ code: 1, stderr: `error: Secret not found: secret '${U1}' does not have a value [no-secret]\n` });

    const b64 = Buffer.from(MARKER).toString('base64');
    const set = await cli('secret-set-value', U1, '--base64', b64);
    expect(set).toMatchObject({ code: 0, stdout: 'Secret value set\n', stderr: 'error: Passing secret value as command-line argument is insecure!\n' });
    expect((await cli('secret-get-value', U1)).stdout).toBe(`${b64}\n`);
    expect((await cli('secret-get-value', U1, '--plain')).stdout).toBe(MARKER);
    // From a file: base64 unless --plain.
    expect((await cli('secret-set-value', U1, '--file', await file('v.txt', 'bmV3IHZhbHVl\n'))).code).toBe(0);
    expect((await cli('secret-get-value', U1, '--plain')).stdout).toBe('new value');
    expect((await cli('secret-set-value', U1, '--file', await file('p.bin', Buffer.from([0, 1, 2, 255])), '--plain')).code).toBe(0);
    expect((await stack.client.secretGetValue(U1)).equals(Buffer.from([0, 1, 2, 255]))).toBe(true);

    // What an auditor sees: a value was set, by whom and when.
    const view = await stack.client.secretGet(U1);
    expect(view.value).toMatchObject({ setBy: expect.any(String) });
    expect(JSON.stringify(view)).not.toMatch(/valueId|digest/);

    expect(await cli('secret-undefine', U1)).toMatchObject({ code: 0, stdout: `Secret ${U1} deleted\n` });
    expect((await cli('secret-list')).stdout.split('\n')).toHaveLength(3);
    // Defined again under the same uuid, it has no value: the old one is gone.
    await cli('secret-define', f);
    expect((await cli('secret-get-value', U1)).stderr).toContain('does not have a value');
    await cli('secret-undefine', U1);
  });

  it("refuses what libvirt refuses, with virsh's lines, and changes nothing", async () => {
    const unknown = '0a0a0a0a-0000-4000-8000-00000000dead';
    for (const [verb, ...rest] of [['secret-dumpxml'], ['secret-undefine'], ['secret-get-value'], ['secret-set-value', '--base64', 'eA==']] as string[][]) {
      const r = await cli(verb!, unknown, ...rest);
      expect(r.code, verb).toBe(1);
      expect(r.stderr, verb).toContain(`error: failed to get secret '${unknown}'\nerror: Secret not found: no secret with matching uuid '${unknown}' [no-secret]\n`);
    }
    expect((await cli('secret-dumpxml', 'not-a-uuid')).stderr).toContain("error: failed to get secret 'not-a-uuid'");

    await cli('secret-define', await file('a.xml', CEPH));
    // The same usage under another uuid.
    const dup = await cli('secret-define', await file('b.xml', CEPH.replace(U1, U2)));
    expect(dup.code).toBe(1);
    expect(dup.stderr).toBe(`error: Failed to set attributes from ${join(dir, 'b.xml')}\nerror: internal error: a secret with UUID ${U1} already defined for use with client.admin secret [internal-error]\n`);
    // The same uuid with another usage.
    const moved = await cli('secret-define', await file('c.xml', CEPH.replace('client.admin secret', 'other')));
    expect(moved.stderr).toContain(`error: internal error: a secret with UUID ${U1} is already defined for use with client.admin secret [internal-error]`);
    // Hostile and malformed documents.
    const bomb = `<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><secret><description>&b;</description></secret>`;
    for (const [name, xml, words] of [
      ['bomb.xml', bomb, /\[xml-error\]/],
      ['ext.xml', `<!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><secret><description>&x;</description></secret>`, /\[xml-error\]/],
      ['big.xml', `<secret><description>${'x'.repeat(100_000)}</description></secret>`, /larger than 65536 bytes \[xml-error\]/],
      ['usage.xml', `<secret><usage type='nfs'/></secret>`, /unsupported configuration: unknown secret usage type nfs \[config-unsupported\]/],
      ['uuid.xml', `<secret><uuid>zzz</uuid></secret>`, /internal error: malformed uuid element \[internal-error\]/],
    ] as const) {
      const r = await cli('secret-define', await file(name, xml));
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(words);
    }
    // An oversized value, and one that is not base64.
    const big = await stack.client.secretSetValue(U1, Buffer.alloc(65_537, 1)).catch((e: unknown) => e);
    expect(big).toMatchObject({ code: 'invalid-arg', message: expect.stringContaining('secret value is too large: 65537 bytes') });
    const large = await cli('secret-set-value', U1, '--file', await file('large', 'A'.repeat(2000)));
    expect(large.stderr).toContain("Failed to read file");
    const missing = await cli('secret-set-value', U1);
    expect(missing.stderr).toContain('error: Input secret value is missing');
    const both = await cli('secret-set-value', U1, '--file', 'x', '--base64', 'eA==');
    expect(both.code).toBe(2);
    // Nothing of all that was recorded: one secret, no value.
    const secrets = await stack.client.secretList();
    expect(secrets.map((s) => [s.id, s.value])).toEqual([[U1, null]]);
    await cli('secret-undefine', U1);
  });

  it('a private secret keeps its value to itself, and stays private', async () => {
    const xml = `<secret private='yes'><uuid>${U2}</uuid><usage type='tls'><name>tls-key</name></usage></secret>`;
    await cli('secret-define', await file('priv.xml', xml));
    expect((await cli('secret-set-value', U2, '--base64', 'c2VjcmV0')).code).toBe(0);
    expect(await cli('secret-get-value', U2)).toMatchObject({ code: 1, stdout: '', stderr: 'error: Invalid secret: secret is private [invalid-secret]\n' });
    const pub = await cli('secret-define', await file('pub.xml', xml.replace("private='yes'", "private='no'")));
    expect(pub.stderr).toContain('internal error: cannot change private flag on existing secret');
    expect((await cli('secret-list', '--private')).stdout).toContain(`${U2}   tls tls-key`);
    expect((await cli('secret-list', '--no-private')).stdout).not.toContain(U2);
    await cli('secret-undefine', U2);
  });

  it('a retried set-value takes effect once, and neither the log nor any bucket holds a value in clear', async () => {
    await cli('secret-define', await file('r.xml', CEPH));
    const value = Buffer.from(`${MARKER}-retry`);
    const first = await stack.client.secretSetValue(U1, value, { commandId: 'set-value-retry-1' });
    const again = await stack.client.secretSetValue(U1, Buffer.from('something else'), { commandId: 'set-value-retry-1' });
    expect(again).toMatchObject({ duplicate: true, version: first.version });
    expect((await stack.client.secretGetValue(U1)).toString()).toBe(`${MARKER}-retry`);

    const forms = [MARKER, Buffer.from(`${MARKER}-retry`).toString('base64'), Buffer.from(MARKER).toString('base64').slice(0, 20), Buffer.from(MARKER).toString('hex')];
    const n = stack.nats.nats;
    // Every message of every stream, KV buckets included, as raw bytes.
    for await (const name of n.jsm.streams.names()) {
      const info = await n.jsm.streams.info(name);
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await n.jsm.streams.getMessage(name, { seq }).catch(() => null);
        if (!m) continue;
        const text = Buffer.from(m.data).toString('latin1');
        for (const f of forms) expect(text, `${name} #${seq}`).not.toContain(f);
      }
    }
    // Only one ciphertext per secret: the first value and the retried copy's are gone.
    const live = async () => (await readBucket(n, 'secret-values')).filter((e) => e.value !== null && e.key.startsWith(U1));
    expect(await live()).toHaveLength(1);
    const events = await n.jsm.streams.info(STREAMS.events);
    expect(events.state.messages).toBeGreaterThan(0);
    await cli('secret-undefine', U1);
    expect(await live()).toHaveLength(0);
  });

  it('a command service killed (SIGKILL) and started again opens what it sealed before; a ciphertext the log never named is never given', async () => {
    await cli('secret-define', await file('k.xml', CEPH));
    await stack.client.secretSetValue(U1, Buffer.from('before the crash'));
    // What a crash between sealing a value and recording it leaves: a ciphertext no event names.
    const values = await stack.nats.nats.kvm.open('secret-values');
    const named = (await readBucket(stack.nats.nats, 'secret-values')).find((e) => e.value !== null && e.key.startsWith(U1))!;
    await values.put(`${U1}.${'f'.repeat(32)}`, named.value!);
    await stack.kill('command');
    await stack.start('command');
    expect((await stack.client.secretGetValue(U1)).toString()).toBe('before the crash');
    await stack.client.secretSetValue(U1, Buffer.from('after the crash'));
    expect((await stack.client.secretGetValue(U1)).toString()).toBe('after the crash');
    await cli('secret-undefine', U1);
  }, 60_000);

  it.runIf(hasVirsh)("virsh's own lines match, side by side (libvirt's test driver has no secret driver: its refusals are the driver's)", async () => {
    const run = promisify(execFile);
    const virsh = async (...args: string[]) => run('virsh', ['-c', 'test:///default', ...args]).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    const unknown = '0a0a0a0a-0000-4000-8000-00000000beef';
    for (const verb of ['secret-dumpxml', 'secret-undefine', 'secret-get-value']) {
      const theirs = await virsh(verb, unknown);
      const ours = await cli(verb, unknown);
      expect(ours.code).toBe(theirs.code);
      expect(ours.stderr.split('\n')[0]).toBe(theirs.stderr.split('\n')[0]);
    }
    const f = await file('v.xml', CEPH);
    expect((await cli('secret-define', join(dir, 'nope.xml'))).code).not.toBe(0);
    const theirs = await virsh('secret-define', f);
    const ours = await cli('secret-define', await file('broken.xml', '<secret>'));
    expect(theirs.stderr.split('\n')[0]).toBe(`error: Failed to set attributes from ${f}`);
    expect(ours.stderr.split('\n')[0]).toBe(`error: Failed to set attributes from ${join(dir, 'broken.xml')}`);
  });
});
