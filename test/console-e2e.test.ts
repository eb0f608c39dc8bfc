import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { PROJECT_ROOT } from '../platform/config.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole } from './fixtures/guest/build.ts';
import { startStack, type Stack } from './fixtures/stack.ts';
import { ConsoleCli } from './fixtures/console.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();
const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');
const BANNER = "Connected to domain 'con'\nEscape character is ^] (Ctrl + ])\n";
/** How long the host keeps a console for a client it no longer hears (set short for the test). */
const IDLE_MS = 2000;


/**
 * `virtplane console`, `vncdisplay`, `domdisplay` and the live XML against a real qemu guest whose
 * serial console runs a shell: bytes typed through the CLI reach the guest over NATS and its answer
 * comes back; one session at a time, `--force` takes over, Ctrl-] and a killed client let go.
 */
describe.skipIf(!availability.ok)('the console of a real qemu guest through the CLI', () => {
  let stack: Stack;
  let dir: string;
  let uuid: string;
  const open: ConsoleCli[] = [];
  const virtplane = async (...args: string[]) => {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url }, timeout: 180_000 }).then(
      (x) => ({ code: 0, ...x }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
    return { code: r.code, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
  };
  const consoleCli = (...args: string[]) => {
    const c = new ConsoleCli(stack.nats.url, args);
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    const guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-console-'));
    stack = await startStack({
      env: {
        VIRTPLANE_DRIVER: 'qemu',
        VIRTPLANE_ACK_WAIT_MS: '3000',
        VIRTPLANE_CONSOLE_HEARTBEAT_MS: '300',
        VIRTPLANE_CONSOLE_IDLE_MS: String(IDLE_MS),
        // Small, so the output of one command already runs the host into it and must wait for the client.
        VIRTPLANE_CONSOLE_WINDOW_BYTES: '4096',
      },
    });
    const file = join(dir, 'con.xml');
    await writeFile(file, tinyGuestXml(guest, { name: 'con', type: availability.kvm ? 'kvm' : 'qemu', devicesXml: "<graphics type='vnc' autoport='yes'/>" }));
    expect((await virtplane('define', file)).code).toBe(0);
    uuid = JSON.parse((await virtplane('domuuid', 'con', '--json')).stdout).uuid as string;
    expect((await virtplane('start', 'con', '--timeout', '120')).stdout).toBe("Domain 'con' started");
    await waitForConsole(join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'console.log'), READY_MARKER, { timeoutMs: 120_000 });
  }, 300_000);
  afterAll(async () => {
    for (const c of open) c.child.kill('SIGKILL');
    await stack?.client.destroy('con').then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("shows the running guest's pty and VNC port in its live XML, and vncdisplay and domdisplay name a display that answers", async () => {
    const xml = (await virtplane('dumpxml', 'con')).stdout;
    const pty = /<serial type='pty'>\s*<source path='(\/dev\/pts\/\d+)'\/>/.exec(xml)?.[1];
    expect(pty, xml).toBeDefined();
    expect(xml).toContain(`<console type='pty' tty='${pty}'>`);
    expect(xml).toMatch(new RegExp(`<console type='pty' tty='${pty}'>\\s*<source path='${pty}'/>`));
    const port = Number(/<graphics type='vnc' port='(\d+)' autoport='yes' listen='127\.0\.0\.1'>/.exec(xml)?.[1]);
    expect(port, xml).toBeGreaterThanOrEqual(5900);
    expect(xml).toContain("<listen type='address' address='127.0.0.1'/>");
    // The definition itself is unchanged: the next boot gets whatever ports and ptys are free then.
    expect((await virtplane('dumpxml', 'con', '--inactive')).stdout).not.toContain('/dev/pts/');

    expect((await virtplane('ttyconsole', 'con')).stdout).toBe(pty);
    expect((await virtplane('vncdisplay', 'con')).stdout).toBe(`127.0.0.1:${port - 5900}`);
    expect((await virtplane('domdisplay', 'con')).stdout).toBe(`vnc://127.0.0.1:${port - 5900}`);
    // A real VNC server is there: it greets with its protocol version.
    const greeting = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('data', (d) => {
        resolve(d.toString('latin1'));
        s.destroy();
      });
      s.once('error', reject);
    });
    expect(greeting).toMatch(/^RFB 003\.00\d\n/);
    expect(await virtplane('domdisplay', 'con', '--type', 'spice')).toMatchObject({ code: 1, stderr: 'error: No graphical display found [operation-failed]' });
  }, 60_000);

  it('types into the guest and reads its answer; a second session is refused while one is open; --force takes over', async () => {
    const first = consoleCli('con');
    await first.see(/Escape character is \^\] \(Ctrl \+ \]\)\n/);
    expect(first.out.startsWith(BANNER)).toBe(true);
    await first.ask('echo $((6*7))', '42');

    // --safe asks for what every session has: the console to itself, taken only with --force.
    const second = await virtplane('console', 'con', '--safe');
    expect(second.code).toBe(1);
    expect(second.stdout).toBe(BANNER.trimEnd());
    expect(second.stderr).toBe('error: operation failed: Active console session exists for this domain [operation-failed]');
    // The refused attempt took nothing from the first.
    await first.ask('echo $((5*5))', '25');

    const third = consoleCli('con', '--force');
    await third.see(/Escape character/);
    expect(await first.exited).toBe(1);
    expect(first.err).toMatch(/^error: operation failed: the console was taken over by '[^']+'/);
    await third.ask('echo $((7*7))', '49');

    // Output several times the host's window arrives whole and in order: the host waits for the client.
    third.out = '';
    third.type('seq 1 3000\r');
    await third.see(/\r?\n3000\r?\n/);
    const lines = third.out.split(/\r?\n/).filter((l) => /^\d+$/.test(l)).map(Number);
    expect(lines).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));

    // Ctrl-] leaves; the console is free at once for a session without --force.
    third.type('\x1d');
    expect(await third.exited).toBe(0);
    const fourth = consoleCli('con', '--safe');
    await fourth.see(/Escape character/);
    await fourth.ask('echo $((8*8))', '64');
    fourth.type('\x1d');
    expect(await fourth.exited).toBe(0);
  }, 180_000);

  it('on a terminal: raw mode passes every byte to the guest, Ctrl-C included, and Ctrl-] leaves', async () => {
    const c = new ConsoleCli(stack.nats.url, ['con'], { terminal: true });
    open.push(c);
    try {
      await c.see(/Escape character is \^\] \(Ctrl \+ \]\)\r?\n/);
      await c.ask('echo $((6*7))', '42');
      // Ctrl-C is the guest's (the tty there interrupts its shell, which is started again), not the end of the CLI.
      c.type('echo never\x03');
      await c.see(/\^C/);
      for (let i = 0; i < 10 && !/\r*\n16\r*\n/.test(c.out); i++) {
        c.type('echo $((4*4))\r');
        await c.see(/\r*\n16\r*\n/, 2000).catch(() => undefined);
      }
      await c.see(/\r*\n16\r*\n/, 1000);
      expect(c.out).not.toMatch(/\r*\nnever\r*\n/);
      c.type('\x1d');
      expect(await c.exited).toBe(0);
    } finally {
      c.child.kill('SIGKILL');
    }
  }, 60_000);

  it('a client killed with SIGKILL holds the console only until the host stops hearing from it', async () => {
    const victim = consoleCli('con');
    await victim.see(/Escape character/);
    await victim.ask('echo $((9*9))', '81');
    victim.child.kill('SIGKILL');
    await victim.exited;
    const refused = await virtplane('console', 'con');
    expect(refused.stderr).toContain('Active console session exists for this domain');
    await new Promise((r) => setTimeout(r, IDLE_MS + 1000));
    const next = consoleCli('con');
    await next.see(/Escape character/);
    await next.ask('echo $((3*4))', '12');
    next.type('\x1d');
    expect(await next.exited).toBe(0);
  }, 120_000);

  it('a client whose host agent is killed with SIGKILL leaves with an error; the restarted agent serves the guest that ran on', async () => {
    const c = consoleCli('con');
    await c.see(/Escape character/);
    await c.ask('echo $((2*21))', '42');
    await stack.kill('host-agent', 'SIGKILL');
    expect(await c.exited).toBe(1);
    expect(c.err).toBe(`error: operation failed: no word from host '${stack.hostId}' for ${IDLE_MS} ms [operation-failed]\n`);
    await stack.start('host-agent');
    const again = consoleCli('con');
    await again.see(/Escape character/);
    await again.ask('echo $((6*6))', '36');
    again.type('\x1d');
    expect(await again.exited).toBe(0);
  }, 120_000);

  it('refuses what libvirt refuses: an unknown device, an unknown domain, a test-driver domain, a guest that is not running', async () => {
    expect(await virtplane('console', 'con', '--devname', 'serial7')).toMatchObject({
      code: 1,
      stderr: 'error: internal error: cannot find character device serial7 [internal-error]',
    });
    expect(await virtplane('console', 'nope')).toMatchObject({ code: 1, stderr: "error: failed to get domain 'nope' [no-domain]" });
    await virtplane('define', '--name', 'con-test', '--type', 'test', '--memory', '64', '--vcpus', '1');
    await virtplane('start', 'con-test');
    expect((await virtplane('console', 'con-test')).stderr).toBe(
      'error: Operation not supported: this function is not supported by the connection driver: virDomainOpenConsole [operation-unsupported]',
    );
    expect((await virtplane('vncdisplay', 'con-test')).stderr).toBe('error: Failed to get VNC port. Is this domain using VNC? [operation-failed]');

    // A guest that goes away ends its console session, as virsh's ends when the guest stops.
    const watching = consoleCli('con');
    await watching.see(/Escape character/);
    await watching.ask('echo $((1+1))', '2');
    expect((await virtplane('destroy', 'con')).code).toBe(0);
    expect(await watching.exited).toBe(0);
    expect(await virtplane('console', 'con')).toMatchObject({ code: 1, stdout: '', stderr: 'error: The domain is not running [operation-invalid]' });
    expect(await virtplane('vncdisplay', 'con')).toMatchObject({ code: 1, stderr: 'error: Domain is not running [operation-invalid]' });
    expect(await virtplane('ttyconsole', 'con')).toMatchObject({ code: 1, stdout: '', stderr: '' });
    expect((await virtplane('dumpxml', 'con')).stdout).not.toContain('/dev/pts/');
  }, 120_000);
});
