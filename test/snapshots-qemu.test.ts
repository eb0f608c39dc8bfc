import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole, type TinyGuest } from './fixtures/guest/build.ts';
import { virtplane as runCli } from './fixtures/cli.ts';
import { GuestShell } from './fixtures/guest-shell.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();

/**
 * Snapshots of a real guest with a qcow2 disk, through the CLI: what the guest wrote to its disk
 * after a snapshot is gone once the domain is reverted to it, for a snapshot of the running guest
 * (savevm: disk and memory) and of the shut off one (qemu-img: disk only).
 */
describe.skipIf(!availability.ok)('snapshots of a real qemu guest through the CLI', () => {
  let stack: Stack;
  let guest: TinyGuest;
  let dir: string;
  const domainType = availability.kvm ? 'kvm' : 'qemu';
  const virtplane = async (...args: string[]) => {
    const r = await runCli({ VIRTPLANE_NATS_URL: stack.nats.url }, ...args);
    return r.code === 0 ? r.stdout.trimEnd() : `exit ${r.code}: ${r.stderr.trim()}`;
  };
  const consoleLog = (uuid: string) => join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'console.log');

  const shell = new GuestShell(() => stack.nats.url);
  const { attach, write, expectDisk } = shell;

  beforeAll(async () => {
    guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-snap-'));
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
  }, 180_000);
  afterAll(async () => {
    shell.close();
    for (const v of (await stack?.client.list({ all: false }).catch(() => [])) ?? []) {
      await stack.client.destroy(v.id).then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    }
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reverting brings back what the disk held at the snapshot, taken running (savevm) or shut off (qemu-img)', async () => {
    const disk = join(dir, 'snap.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', disk, '16M']);
    const file = join(dir, 'snap.xml');
    const devicesXml = `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>`;
    await writeFile(file, tinyGuestXml(guest, { name: 'snapg', type: domainType, extraCmdline: 'vp.disk=1', devicesXml }));
    expect(await virtplane('define', file)).toBe(`Domain 'snapg' defined from ${file}`);
    const uuid = JSON.parse(await virtplane('dominfo', 'snapg', '--json')).id as string;
    expect(await virtplane('start', 'snapg', '--timeout', '120')).toBe("Domain 'snapg' started");
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    await attach('snapg');

    // Running: savevm keeps the disk and the memory; loadvm brings both back.
    await write('alpha');
    expect(await virtplane('snapshot-create-as', 'snapg', 's-alpha', '--description', 'alpha on disk')).toBe('Domain snapshot s-alpha created');
    await write('bravo');
    await expectDisk('bravo');
    expect(await virtplane('snapshot-revert', 'snapg', 's-alpha')).toBe('Domain snapshot s-alpha reverted');
    expect(await virtplane('domstate', 'snapg', '--reason')).toBe('running (from snapshot)');
    await expectDisk('alpha');
    const listed = await virtplane('snapshot-list', 'snapg');
    expect(listed.split('\n').slice(0, 2)).toEqual([' Name      Creation Time               State', '-'.repeat(48)]);
    expect(listed.split('\n')[2]).toMatch(/^ s-alpha   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}   running$/);

    // Shut off: qemu-img snapshots the image alone; reverting with --running boots from it.
    await write('delta');
    expect(await virtplane('destroy', 'snapg')).toBe("Domain 'snapg' destroyed");
    expect(await virtplane('snapshot-create-as', 'snapg', 's-off')).toBe('Domain snapshot s-off created');
    expect(await virtplane('snapshot-parent', 'snapg', 's-off')).toBe('s-alpha');
    expect(await virtplane('start', 'snapg', '--timeout', '120')).toBe("Domain 'snapg' started");
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    await attach('snapg');
    await write('charlie');
    await expectDisk('charlie');
    expect(await virtplane('snapshot-revert', 'snapg', 's-off', '--running')).toBe('Domain snapshot s-off reverted');
    expect(await virtplane('domstate', 'snapg', '--reason')).toBe('running (from snapshot)');
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    await attach('snapg');
    await expectDisk('delta');

    // Deleting drops the image's internal snapshot too; the log and the image agree.
    expect(await virtplane('snapshot-delete', 'snapg', 's-alpha')).toBe('Domain snapshot s-alpha deleted');
    expect(await virtplane('snapshot-list', 'snapg', '--name')).toBe('s-off');
    const { stdout } = await run('qemu-img', ['snapshot', '-l', '-U', disk]);
    expect(stdout).toMatch(/\bs-off\b/);
    expect(stdout).not.toMatch(/\bs-alpha\b/);

    expect(await virtplane('destroy', 'snapg')).toBe("Domain 'snapg' destroyed");
    expect(await virtplane('undefine', 'snapg')).toBe(
      "exit 1: error: Failed to undefine domain 'snapg'\nerror: Requested operation is not valid: cannot delete inactive domain with 1 snapshots [operation-invalid]",
    );
    expect(await virtplane('undefine', 'snapg', '--snapshots-metadata')).toBe("Domain 'snapg' has been undefined");
  }, 600_000);
});
