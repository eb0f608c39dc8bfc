import { spawn } from 'node:child_process';
import { mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { isActive } from '../contracts/domain/state.ts';
import { BaseConfig, embeddedAddressFile, loadConfig, type EmbeddedAddress } from '../platform/config.ts';
import { guestsLeftNote, pidAlive, readEmbedded, runningGuests, waitForExit } from '../platform/embedded.ts';
import type { Readiness } from '../platform/ready.ts';
import { programArgs } from '../platform/runtime.ts';
import { PROJECT_ROOT } from '../platform/config.ts';
import type { CliHelpers } from './network-commands.ts';
import { Exit } from './errors.ts';

/** How long `up` waits for everything to be ready: a host agent probing KVM takes a few seconds. */
const UP_TIMEOUT_MS = 120_000;
/** How long `down` gives the supervisor to stop its services cleanly before it is killed. */
const DOWN_TIMEOUT_MS = 30_000;

const kill = (pid: number | undefined, signal: NodeJS.Signals) => {
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already.
  }
};

/** Every process a run of the embedded default recorded, supervisor last. */
const pidsOf = (a: EmbeddedAddress): number[] => [...(a.services ?? []).map((s) => s.pid), a.pid, ...(a.supervisor ? [a.supervisor] : [])];

export type EmbeddedStatus =
  | { state: 'running'; url: string; supervisor?: number; startedAt: string; services: Array<{ name: string; pid: number; alive: boolean }>; guests: number }
  | { state: 'stopped' }
  | { state: 'unhealthy'; url: string; problems: string[] };

export const embeddedStatus = (dataDir: string): EmbeddedStatus => {
  const a = readEmbedded(dataDir);
  if (!a) return { state: 'stopped' };
  const services = (a.services ?? []).map((s) => ({ ...s, alive: pidAlive(s.pid) }));
  const problems = [
    ...(a.supervisor !== undefined && !pidAlive(a.supervisor) ? [`its supervisor (pid ${a.supervisor}) is gone`] : []),
    ...(!pidAlive(a.pid) ? [`nats-server (pid ${a.pid}) is not running`] : []),
    ...services.filter((s) => !s.alive).map((s) => `${s.name} (pid ${s.pid}) is not running`),
  ];
  if (problems.length === (a.services?.length ?? 0) + 1 + (a.supervisor !== undefined ? 1 : 0)) return { state: 'stopped' };
  if (problems.length > 0) return { state: 'unhealthy', url: a.url, problems };
  return { state: 'running', url: a.url, ...(a.supervisor !== undefined ? { supervisor: a.supervisor } : {}), startedAt: a.startedAt, services, guests: runningGuests(dataDir).length };
};

/** `virtplane up`, `down` and `status`: the embedded default as a background service of this machine. */
export const registerEmbeddedCommands = (program: Command, h: CliHelpers & { settings(): string | undefined }): void => {
  const dataDir = () => loadConfig(BaseConfig, { config: h.settings() }).dataDir;

  program
    .command('up')
    .description('start the embedded default in the background: its own nats-server, the services and one host agent')
    .addHelpText('after', '\nExamples:\n  virtplane up && virtplane host-list\n  VIRTPLANE_DATA_DIR=/var/lib/virtplane virtplane up')
    .action(async () => {
      const dir = dataDir();
      const now = embeddedStatus(dir);
      if (now.state === 'running') return h.out().result(`virtplane is already running at ${now.url}`, now);
      if (now.state === 'unhealthy') throw new Exit(1, `virtplane is not healthy (${now.problems.join('; ')}): \`virtplane down\` first`);
      mkdirSync(dir, { recursive: true });
      const logFile = join(dir, 'embedded.log');
      const fd = openSync(logFile, 'a');
      const child = spawn(process.execPath, programArgs('embedded'), {
        cwd: PROJECT_ROOT,
        env: { ...process.env, VIRTPLANE_DATA_DIR: dir },
        detached: true,
        stdio: ['ignore', fd, fd, 'ipc'],
      });
      const outcome = await new Promise<Readiness | { type: 'exit'; code: number | null } | { type: 'timeout' }>((resolve) => {
        const timer = setTimeout(() => resolve({ type: 'timeout' }), UP_TIMEOUT_MS);
        child.on('message', (m: Readiness) => {
          clearTimeout(timer);
          resolve(m);
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve({ type: 'exit', code });
        });
      });
      if (outcome.type === 'ready') {
        child.disconnect();
        child.unref();
        const d = outcome.detail as { url: string; operator: string };
        return h.out().result(`virtplane is up at ${d.url} (you are '${d.operator}'); log: ${logFile}; \`virtplane down\` stops it`, { ...d, pid: child.pid, log: logFile });
      }
      if (outcome.type === 'timeout') {
        // Its whole process group: the supervisor and everything it started.
        kill(-(child.pid ?? 0), 'SIGKILL');
        throw new Exit(1, `virtplane did not become ready within ${UP_TIMEOUT_MS / 1000} s and was stopped; see ${logFile}`);
      }
      if (outcome.type === 'failed') throw new Exit(outcome.usage ? 2 : 1, `virtplane did not start: ${outcome.reason}`);
      throw new Exit(1, `virtplane did not start (exit ${outcome.code}); see ${logFile}`);
    });

  program
    .command('down')
    .description('stop the embedded default; guests keep running (and are adopted at the next start) unless --destroy-guests')
    .option('--destroy-guests', 'destroy every running domain and stop every active network first, as virsh destroy and net-destroy do')
    .addHelpText('after', '\nExamples:\n  virtplane down\n  virtplane down --destroy-guests')
    .action(async (o: { destroyGuests?: boolean }) => {
      const dir = dataDir();
      const a = readEmbedded(dir);
      const now = embeddedStatus(dir);
      if (!a || now.state === 'stopped') {
        if (a) rmSync(embeddedAddressFile(dir), { force: true });
        const note = guestsLeftNote(dir);
        return h.out().result(`virtplane is not running${note ? `; ${note}` : ''}`, { state: 'stopped' });
      }
      let destroyed = { domains: 0, networks: 0 };
      if (o.destroyGuests && now.state === 'running') destroyed = await destroyEverything(h);
      if (a.supervisor !== undefined && pidAlive(a.supervisor)) {
        kill(a.supervisor, 'SIGTERM');
        if (!(await waitForExit(a.supervisor, DOWN_TIMEOUT_MS))) kill(-a.supervisor, 'SIGKILL');
      }
      // Whatever a supervisor that died left behind: its services and its nats-server.
      for (const pid of pidsOf(a)) if (pidAlive(pid)) kill(pid, 'SIGTERM');
      for (const pid of pidsOf(a)) if (!(await waitForExit(pid, 10_000))) kill(pid, 'SIGKILL');
      rmSync(embeddedAddressFile(dir), { force: true });
      const note = guestsLeftNote(dir);
      const what = o.destroyGuests ? ` (destroyed ${destroyed.domains} domain${destroyed.domains === 1 ? '' : 's'}, stopped ${destroyed.networks} network${destroyed.networks === 1 ? '' : 's'})` : '';
      h.out().result(`virtplane stopped${what}${note ? `; ${note}` : ''}`, { state: 'stopped', ...destroyed });
    });

  program
    .command('status')
    .description('is the embedded default running? exit 0 running, 3 stopped, 1 when a part of it is not running')
    .action(async () => {
      const s = embeddedStatus(dataDir());
      if (s.state === 'running') {
        const parts = s.services.map((p) => `${p.name} (pid ${p.pid})`).join(', ');
        return h.out().result(`virtplane is running at ${s.url} since ${s.startedAt}: ${parts}; ${s.guests} guest${s.guests === 1 ? '' : 's'} running`, s);
      }
      if (s.state === 'stopped') {
        h.out().result('virtplane is not running', s);
        throw new Exit(3);
      }
      h.out().result(`virtplane is not healthy: ${s.problems.join('; ')}`, s);
      throw new Exit(1);
    });
};

const destroyEverything = async (h: CliHelpers): Promise<{ domains: number; networks: number }> =>
  h.withClient(async (c) => {
    let domains = 0;
    for (const d of await c.list({ all: true })) {
      if (!isActive(d.observed.state)) continue;
      await c.outcome(await c.destroy(d.id), 60_000);
      domains++;
    }
    let networks = 0;
    for (const n of await c.netList()) {
      if (!n.active) continue;
      await c.netDestroy(n.name);
      networks++;
    }
    return { domains, networks };
  });
