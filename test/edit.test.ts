import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../platform/config.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');

/** virsh edit, net-edit and pool-edit, with an editor that is a script: what a person would type, done by sed. */
describe('edit, net-edit and pool-edit', () => {
  let stack: Stack;
  let dir: string;
  beforeAll(async () => {
    stack = await startStack();
    dir = await mkdtemp(join(tmpdir(), 'vp-edit-'));
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const editor = async (name: string, script: string) => {
    const path = join(dir, name);
    await writeFile(path, `#!/bin/sh\n${script}\n`);
    await chmod(path, 0o755);
    return path;
  };
  const cli = async (editorPath: string | null, ...args: string[]) => {
    const env = { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url, VISUAL: '', EDITOR: editorPath ?? 'true' };
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };

  it('defines the domain again from what the editor saved, and says when nothing changed', async () => {
    expect((await cli(null, 'define', '--name', 'ed1', '--memory', '128')).code).toBe(0);
    const unchanged = await cli(null, 'edit', 'ed1');
    expect(unchanged).toMatchObject({ code: 0 });
    expect(unchanged.stdout.trim()).toBe("Domain 'ed1' XML configuration not changed.");
    const before = JSON.parse((await cli(null, '--json', 'dominfo', 'ed1')).stdout) as { version: number };

    const more = await editor('more-memory', `sed -i "s|<memory unit='KiB'>131072</memory>|<memory unit='KiB'>262144</memory>|; s|<currentMemory unit='KiB'>131072</currentMemory>|<currentMemory unit='KiB'>262144</currentMemory>|" "$1"`);
    const edited = await cli(more, 'edit', 'ed1');
    expect(edited.stderr).toBe('');
    expect(edited.stdout.trim()).toBe("Domain 'ed1' XML configuration edited.");
    expect((await cli(null, 'dominfo', 'ed1')).stdout).toMatch(/^Max memory:\s+262144 KiB$/m);
    const after = JSON.parse((await cli(null, '--json', 'dominfo', 'ed1')).stdout) as { version: number; id: string };
    expect(after.version).toBeGreaterThan(before.version);
  });

  it('refuses a broken edit with the define error, changes nothing and keeps the edited copy', async () => {
    const version = async () => (JSON.parse((await cli(null, '--json', 'dominfo', 'ed1')).stdout) as { version: number }).version;
    const v0 = await version();
    const breaks = await editor('breaks', `sed -i "s|</domain>|<domain>|" "$1"`);
    const r = await cli(breaks, 'edit', 'ed1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*\[xml-error\]$/m);
    const kept = /the edited copy is kept in (\S+\.xml)\)/.exec(r.stderr)?.[1];
    expect(kept).toBeDefined();
    expect(await version()).toBe(v0);
    await rm(kept!, { force: true });

    const fails = await editor('fails', 'exit 3');
    const f = await cli(fails, 'edit', 'ed1');
    expect(f.code).toBe(1);
    expect(f.stderr).toContain('exit status 3');
    expect(await version()).toBe(v0);

    const unknown = await cli(null, 'edit', 'no-such-domain');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe("error: failed to get domain 'no-such-domain' [no-domain]");
  });

  it('edits a network and a pool the same way', async () => {
    await writeFile(join(dir, 'net.xml'), "<network><name>ednet</name><bridge name='vped0'/><ip address='192.168.163.1' netmask='255.255.255.0'/></network>");
    expect((await cli(null, 'net-define', join(dir, 'net.xml'))).code).toBe(0);
    expect((await cli(null, 'net-edit', 'ednet')).stdout.trim()).toBe('Network ednet XML configuration not changed.');
    const addr = await editor('addr', `sed -i "s|192.168.163.1|192.168.164.1|" "$1"`);
    expect((await cli(addr, 'net-edit', 'ednet')).stdout.trim()).toBe('Network ednet XML configuration edited.');
    expect((await cli(null, 'net-dumpxml', 'ednet')).stdout).toContain("address='192.168.164.1'");

    await writeFile(join(dir, 'pool.xml'), `<pool type='dir'><name>edpool</name><target><path>${join(dir, 'p1')}</path></target></pool>`);
    expect((await cli(null, 'pool-define', join(dir, 'pool.xml'))).code).toBe(0);
    const path = await editor('path', `sed -i "s|/p1<|/p2<|" "$1"`);
    expect((await cli(path, 'pool-edit', 'edpool')).stdout.trim()).toBe('Pool edpool XML configuration edited.');
    expect((await cli(null, 'pool-dumpxml', 'edpool')).stdout).toContain(`<path>${join(dir, 'p2')}</path>`);
  });
});
