import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findQemuBinary } from './host.ts';
import { QmpClient, QmpClosedError, QmpError, QmpTimeoutError, connectWhenReady } from './qmp.ts';

const binary = findQemuBinary();

describe.skipIf(!binary)('QMP client against a real qemu', () => {
  let dir: string;
  let sock: string;
  let qemu: ChildProcess;
  let exited: Promise<unknown>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vp-qmp-'));
    sock = join(dir, 'qmp.sock');
    qemu = spawn(
      binary!,
      ['-machine', 'pc', '-accel', 'tcg', '-m', '16', '-nodefaults', '-display', 'none', '-S', '-no-shutdown',
        '-chardev', `socket,id=mon,path=${sock},server=on,wait=off`, '-mon', 'chardev=mon,mode=control'],
      { stdio: 'ignore' },
    );
    exited = new Promise((r) => qemu.once('exit', r));
  });

  afterAll(async () => {
    qemu.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  });

  it('waits for the socket, reads the greeting and negotiates capabilities', async () => {
    const qmp = await connectWhenReady(sock, { timeoutMs: 20_000, alive: () => qemu.exitCode === null });
    expect(qmp.greeting?.QMP.version.qemu.major).toBeGreaterThanOrEqual(4);
    // Only after qmp_capabilities does qemu accept ordinary commands.
    expect(await qmp.execute('query-status')).toMatchObject({ status: 'prelaunch', running: false });
    await qmp.close();
  });

  it('matches replies to commands by id when several are in flight', async () => {
    const qmp = await QmpClient.connect(sock);
    const [status, name, version] = await Promise.all([
      qmp.execute<{ status: string }>('query-status'),
      qmp.execute<Record<string, unknown>>('query-name'),
      qmp.execute<{ qemu: { major: number } }>('query-version'),
    ]);
    expect(status.status).toBe('prelaunch');
    expect(name).toEqual({});
    expect(version.qemu.major).toBeGreaterThanOrEqual(4);
    await qmp.close();
  });

  it('turns error replies into QmpError', async () => {
    const qmp = await QmpClient.connect(sock);
    await expect(qmp.execute('no-such-command')).rejects.toMatchObject({ name: 'QmpError', errorClass: 'CommandNotFound' });
    await expect(qmp.execute('query-status', { bogus: 1 })).rejects.toBeInstanceOf(QmpError);
    await qmp.close();
  });

  it('delivers asynchronous events, even ones that arrive before the reply', async () => {
    const qmp = await QmpClient.connect(sock);
    const seen: string[] = [];
    const off = qmp.onEvent((e) => seen.push(e.event));
    const resumed = qmp.waitForEvent('RESUME', { timeoutMs: 10_000 });
    await qmp.execute('cont');
    expect((await resumed).event).toBe('RESUME');
    const stopped = qmp.waitForEvent((e) => e.event === 'STOP', { timeoutMs: 10_000 });
    await qmp.execute('stop');
    await stopped;
    off();
    expect(seen).toEqual(['RESUME', 'STOP']);
    await qmp.close();
  });

  it('times out waiting and can be aborted, without breaking the connection', async () => {
    const qmp = await QmpClient.connect(sock);
    await expect(qmp.waitForEvent('NEVER', { timeoutMs: 50 })).rejects.toBeInstanceOf(QmpTimeoutError);
    const ac = new AbortController();
    const waiting = qmp.waitForEvent('NEVER', { timeoutMs: 10_000, signal: ac.signal });
    ac.abort();
    await expect(waiting).rejects.toBeInstanceOf(QmpTimeoutError);
    expect(await qmp.execute('query-status')).toMatchObject({ status: 'paused' });
    await qmp.close();
  });

  it('rejects pending work and resolves `closed` when qemu goes away', async () => {
    const qmp = await QmpClient.connect(sock);
    const never = qmp.waitForEvent('NEVER', { timeoutMs: 30_000 });
    const shutdown = qmp.waitForEvent('SHUTDOWN', { timeoutMs: 30_000 });
    await qmp.execute('quit').catch((e) => expect(e).toBeInstanceOf(QmpClosedError));
    expect((await shutdown).data).toMatchObject({ guest: false, reason: 'host-qmp-quit' });
    await expect(never).rejects.toBeInstanceOf(QmpClosedError);
    await qmp.closed;
    expect(qmp.isClosed).toBe(true);
    await expect(qmp.execute('query-status')).rejects.toBeInstanceOf(QmpClosedError);
    await exited;
  });

  it('gives up on a socket nobody serves', async () => {
    await expect(connectWhenReady(join(dir, 'absent.sock'), { timeoutMs: 200 })).rejects.toBeInstanceOf(QmpTimeoutError);
    await expect(connectWhenReady(join(dir, 'absent.sock'), { timeoutMs: 5000, alive: () => false })).rejects.toBeInstanceOf(
      QmpClosedError,
    );
  });
});
