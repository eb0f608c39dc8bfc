import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../platform/config.ts';
import { freePort, startNatsServer } from '../platform/nats-server.ts';
import { connectNats, isNoResponders } from '../platform/nats.ts';
import { programArgs } from '../platform/runtime.ts';
import { bigDomainXml } from './fixtures/big-xml.ts';
import { buildTinyGuest, tinyGuestXml } from './fixtures/guest/build.ts';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

/**
 * virtplane as a user meets it: the built CLI and services, `npm start`, `virtplane up/down/status`,
 * and every failure a user can cause, each one line with the right exit status and nothing left running.
 */
const run = promisify(execFile);
const CLI = join(PROJECT_ROOT, 'bin', 'virtplane.mjs');

const virtplane = async (env: Record<string, string>, ...args: string[]) => {
  const started = Date.now();
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, VIRTPLANE_NATS_URL: '', ...env }, timeout: 90_000 });
    return { code: 0, stdout, stderr, ms: Date.now() - started };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr, ms: Date.now() - started };
  }
};

/** Processes whose command line names this data directory or this checkout's bundles. */
const running = async (pattern: string): Promise<string[]> => {
  const r = await run('pgrep', ['-af', pattern]).catch(() => ({ stdout: '' }));
  return r.stdout
    .trim()
    .split('\n')
    .filter((l) => l && !l.includes('pgrep'));
};

/** `pgrep` until nothing matches: a stopping process takes a moment to be reaped. */
const nothingLeft = async (pattern: string): Promise<string[]> => {
  const end = Date.now() + 15_000;
  for (;;) {
    const left = await running(pattern);
    if (left.length === 0 || Date.now() > end) return left;
    await new Promise((r) => setTimeout(r, 200));
  }
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const oneLine = (s: string) => {
  const lines = s.trim().split('\n');
  expect(lines, s).toHaveLength(1);
  expect(s).not.toMatch(/^\s+at /m);
  return lines[0]!;
};

describe('the CLI', () => {
  it('prints its version, a verb\'s help with examples, completion scripts, and exits 2 on bad usage', async () => {
    const version = await virtplane({}, '--version');
    expect(version).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    const help = await virtplane({}, 'help', 'define');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Examples:\n  virtplane define --name web1');
    expect((await virtplane({}, '--help')).stdout).toMatch(/Examples:[\s\S]*virtplane up/);
    const bash = await virtplane({}, 'completion', 'bash');
    expect(bash.stdout).toContain('complete -F _virtplane virtplane');
    const words = await run('bash', ['-c', `${bash.stdout}\nCOMP_WORDS=(virtplane start --pa); COMP_CWORD=2; _virtplane; echo "\${COMPREPLY[@]}"`]);
    expect(words.stdout.trim()).toBe('--paused');
    expect((await virtplane({}, 'completion', 'zsh')).stdout).toMatch(/^#compdef virtplane/);
    for (const args of [['no-such-verb'], ['list', '--no-such-option'], ['start'], ['completion', 'fish'], ['define', '--name', 'x']]) {
      const r = await virtplane({}, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^error: /);
    }
  });

  it('a missing file, a bad setting, an unreachable server: one line each, and the right status', async () => {
    const missing = await virtplane({ VIRTPLANE_NATS_URL: 'nats://127.0.0.1:1' }, 'define', '/nonexistent/dom.xml');
    expect(missing.code).toBe(2);
    expect(oneLine(missing.stderr)).toBe('error: cannot read /nonexistent/dom.xml: no such file or directory');
    const bad = await virtplane({ VIRTPLANE_REPLICAS: '9' }, 'list');
    expect(bad.code).toBe(2);
    expect(oneLine(bad.stderr)).toMatch(/^error: invalid configuration: replicas \(VIRTPLANE_REPLICAS\): /);
    const refused = await virtplane({ VIRTPLANE_NATS_URL: 'nats://127.0.0.1:1' }, 'list');
    expect(refused.code).toBe(1);
    expect(oneLine(refused.stderr)).toMatch(/^error: cannot connect to NATS at nats:\/\/127\.0\.0\.1:1: /);
  });

  it('settings come from the config file, then VIRTPLANE_* variables, then flags', async () => {
    const home = await mkdtemp(join(tmpdir(), 'vp-config-'));
    await mkdir(join(home, 'virtplane'));
    await writeFile(join(home, 'virtplane', 'config.json'), JSON.stringify({ natsUrl: 'nats://127.0.0.1:1' }));
    const env = { XDG_CONFIG_HOME: home };
    expect((await virtplane(env, 'list')).stderr).toContain('nats://127.0.0.1:1:');
    expect((await virtplane({ ...env, VIRTPLANE_NATS_URL: 'nats://127.0.0.1:2' }, 'list')).stderr).toContain('nats://127.0.0.1:2:');
    expect((await virtplane({ ...env, VIRTPLANE_NATS_URL: 'nats://127.0.0.1:2' }, '-s', 'nats://127.0.0.1:3', 'list')).stderr).toContain('nats://127.0.0.1:3:');
    await writeFile(join(home, 'virtplane', 'config.json'), '{ not json');
    const broken = await virtplane(env, 'list');
    expect(broken.code).toBe(2);
    expect(oneLine(broken.stderr)).toMatch(/^error: invalid configuration: config file .*config\.json/);
    await rm(home, { recursive: true, force: true });
  });

  it('a server without JetStream: one line at once, no hang', async () => {
    const port = await freePort();
    const plain = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await virtplane({ VIRTPLANE_NATS_URL: `nats://127.0.0.1:${port}` }, 'list');
      expect(r.code).toBe(1);
      expect(oneLine(r.stderr)).toBe(`error: the NATS server at nats://127.0.0.1:${port} has no JetStream: virtplane needs one started with JetStream (nats-server -js)`);
      expect(r.ms).toBeLessThan(30_000);
    } finally {
      plain.kill();
    }
  });

  it('a server where no service answers: one line that says so', async () => {
    const server = await startNatsServer();
    try {
      for (const args of [['list'], ['define', '--name', 'x', '--memory', '64']]) {
        const r = await virtplane({ VIRTPLANE_NATS_URL: server.url }, ...args);
        expect(r.code).toBe(1);
        // As virsh prints a failed verb: what failed (for define, "Failed to define domain 'x'"), then
        // the reason in libvirt's words for an operation-failed error.
        const lines = r.stderr.trim().split('\n');
        expect(r.stderr).not.toMatch(/^\s+at /m);
        if (args[0] === 'define') expect(lines.shift()).toBe("error: Failed to define domain 'x'");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^error: operation failed: no service answers .*: is virtplane running\? \[operation-failed\]$/);
      }
    } finally {
      await server.stop();
    }
  });
});

describe('a service run by hand', () => {
  it('with a bad setting: one line that names it, exit 2, from dist/ and from the sources', async () => {
    for (const fromSource of [false, true]) {
      const [node, ...args] = [process.execPath, ...programArgs('command', fromSource)];
      const r = await run(node!, args, { env: { ...process.env, VIRTPLANE_NATS_URL: 'nats://127.0.0.1:1', VIRTPLANE_REPLICAS: '0' } }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      expect(r.code).toBe(2);
      expect(JSON.parse(oneLine(r.stderr))).toMatchObject({ level: 'error', msg: expect.stringMatching(/^command service: invalid configuration: replicas \(VIRTPLANE_REPLICAS\): /) });
    }
  });

  it('nats.js 3.4 wraps "no responders": it is still recognised', async () => {
    const server = await startNatsServer();
    const n = await connectNats(server.url, 'probe');
    try {
      const e = await n.nc.request('nobody.listens', new Uint8Array(), { timeout: 2000 }).then(() => null, (err: unknown) => err);
      expect(e).toBeInstanceOf(Error);
      expect(isNoResponders(e)).toBe(true);
      expect(isNoResponders(new Error('timeout'))).toBe(false);
    } finally {
      await n.close();
      await server.stop();
    }
  });
});

describe('the built services', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ fromSource: false });
  });
  afterAll(async () => stack?.stop());

  it('run from dist/, large documents parsed on the bundled worker threads', async () => {
    const { xml } = bigDomainXml('built-big', 200 * 1024);
    const dir = await mkdtemp(join(tmpdir(), 'vp-big-'));
    await writeFile(join(dir, 'big.xml'), xml);
    const r = await virtplane({ VIRTPLANE_NATS_URL: stack.nats.url }, 'define', join(dir, 'big.xml'));
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`Domain 'built-big' defined from ${join(dir, 'big.xml')}`);
    const cmd = await running(`${PROJECT_ROOT}/dist/command.mjs`);
    expect(cmd.length).toBeGreaterThan(0);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('the embedded default', () => {
  let dataDir: string;
  const env = () => ({ VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_DRIVER: 'test', VIRTPLANE_HOST_ID: 'product-host' });
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vp-product-'));
  });
  afterAll(async () => {
    await virtplane(env(), 'down');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('up, status, up again, down: one line each, right statuses, nothing left running', async () => {
    const stopped = await virtplane(env(), 'status');
    expect(stopped.code).toBe(3);
    expect(oneLine(stopped.stdout)).toBe('virtplane is not running');
    const up = await virtplane(env(), 'up');
    expect(up.code, up.stderr).toBe(0);
    expect(oneLine(up.stdout)).toMatch(/^virtplane is up at nats:\/\/127\.0\.0\.1:\d+ \(you are '[\w-]+'\); log: .*embedded\.log; `virtplane down` stops it$/);
    const status = await virtplane(env(), 'status');
    expect(status.code).toBe(0);
    expect(oneLine(status.stdout)).toMatch(/^virtplane is running at .*: command \(pid \d+\), projector \(pid \d+\), host-agent \(pid \d+\); 0 guests running$/);
    expect(JSON.parse((await virtplane(env(), 'host-list', '--json')).stdout).map((h: { hostId: string }) => h.hostId)).toEqual(['product-host']);
    expect(oneLine((await virtplane(env(), 'up')).stdout)).toMatch(/^virtplane is already running at /);
    expect((await running(dataDir)).length).toBeGreaterThan(0);
    const down = await virtplane(env(), 'down');
    expect(down.code).toBe(0);
    expect(oneLine(down.stdout)).toBe('virtplane stopped');
    expect(await nothingLeft(dataDir)).toEqual([]);
    expect((await virtplane(env(), 'status')).code).toBe(3);
    expect(oneLine((await virtplane(env(), 'down')).stdout)).toBe('virtplane is not running');
  });

  it('a bad setting stops it before anything starts; a service that fails stops everything already started', async () => {
    const bad = await virtplane({ ...env(), VIRTPLANE_REPLICAS: 'three' }, 'up');
    expect(bad.code).toBe(2);
    expect(oneLine(bad.stderr)).toMatch(/^error: invalid configuration: replicas \(VIRTPLANE_REPLICAS\): /);
    // Only the command service and the agent check lease timings: the server is up by then.
    const failing = await virtplane({ ...env(), VIRTPLANE_LEASE_TTL_MS: '1000' }, 'up');
    expect(failing.code).toBe(2);
    expect(oneLine(failing.stderr)).toMatch(/^error: virtplane did not start: command service: invalid configuration: .*lease/i);
    expect(await nothingLeft(dataDir)).toEqual([]);
    expect((await virtplane(env(), 'status')).code).toBe(3);
  });

  it('a supervisor killed with -9: its services stop with it, status says what is left, down stops the rest', async () => {
    expect((await virtplane(env(), 'up')).code).toBe(0);
    const address = JSON.parse(await readFile(join(dataDir, 'embedded.json'), 'utf8')) as { supervisor: number; pid: number; services: Array<{ pid: number }> };
    process.kill(address.supervisor, 'SIGKILL');
    // A service whose supervisor is gone stops as on SIGTERM: nobody would be left to stop it.
    const end = Date.now() + 20_000;
    while (address.services.some((p) => alive(p.pid)) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(address.services.filter((p) => alive(p.pid))).toEqual([]);
    const status = await virtplane(env(), 'status');
    expect(status.code).toBe(1);
    expect(oneLine(status.stdout)).toMatch(/^virtplane is not healthy: its supervisor \(pid \d+\) is gone; /);
    expect(alive(address.pid)).toBe(true);
    const down = await virtplane(env(), 'down');
    expect(down.code).toBe(0);
    expect(oneLine(down.stdout)).toBe('virtplane stopped');
    expect(await nothingLeft(dataDir)).toEqual([]);
  });

  it('npm start works under VIRTPLANE_LOG_LEVEL=warn, and npm stop stops it', async () => {
    const npm = spawn('npm', ['start', '--silent'], { cwd: PROJECT_ROOT, env: { ...process.env, ...env(), VIRTPLANE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    npm.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    npm.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => npm.once('exit', r));
    try {
      const end = Date.now() + 90_000;
      while (!out.includes('virtplane is up')) {
        if (Date.now() > end || npm.exitCode !== null) throw new Error(`npm start did not come up: ${out}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(out).not.toMatch(/"level":"info"/);
      expect((await virtplane(env(), 'status')).code).toBe(0);
      expect((await virtplane(env(), 'define', '--name', 'warn-1', '--memory', '64')).code).toBe(0);
      const stop = spawn('npm', ['stop', '--silent'], { cwd: PROJECT_ROOT, env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
      let said = '';
      stop.stdout!.on('data', (d: Buffer) => (said += d.toString()));
      expect(await new Promise((r) => stop.once('exit', r))).toBe(0);
      expect(said.trim()).toBe('virtplane stopped');
      await exited;
      expect(await nothingLeft(dataDir)).toEqual([]);
    } finally {
      npm.kill('SIGKILL');
    }
  });
});

describe.skipIf(!(await qemuAvailable()).ok)('the embedded default with real guests', () => {
  let dataDir: string;
  const env = () => ({ VIRTPLANE_DATA_DIR: dataDir, VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_HOST_ID: 'guest-host' });
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vp-product-guests-'));
  });
  afterAll(async () => {
    await virtplane(env(), 'down', '--destroy-guests');
    for (const line of await running(dataDir)) process.kill(Number(line.split(' ')[0]), 'SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('down says which guests it leaves running and how to stop them; the next up adopts them; --destroy-guests stops them', async () => {
    const guest = await buildTinyGuest();
    const type = (await qemuAvailable()).kvm ? 'kvm' : 'qemu';
    const file = join(dataDir, 'g1.xml');
    expect((await virtplane(env(), 'up')).code).toBe(0);
    await writeFile(file, tinyGuestXml(guest, { name: 'g1', type }));
    expect((await virtplane(env(), 'define', file)).code).toBe(0);
    expect((await virtplane(env(), 'start', 'g1')).stdout.trim()).toBe("Domain 'g1' started");
    const down = await virtplane(env(), 'down');
    expect(down.code).toBe(0);
    expect(oneLine(down.stdout)).toBe(
      'virtplane stopped; 1 guest still running (g1): the host agent adopts them at the next start; `virtplane down --destroy-guests` stops them',
    );
    expect((await running(dataDir)).filter((l) => l.includes('qemu-system'))).toHaveLength(1);
    expect((await virtplane(env(), 'up')).code).toBe(0);
    expect((await virtplane(env(), 'domstate', 'g1')).stdout.trim()).toBe('running');
    const destroy = await virtplane(env(), 'down', '--destroy-guests');
    expect(destroy.code).toBe(0);
    expect(oneLine(destroy.stdout)).toBe('virtplane stopped (destroyed 1 domain, stopped 0 networks)');
    expect(await nothingLeft(dataDir)).toEqual([]);
  }, 300_000);
});

