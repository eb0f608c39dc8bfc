import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processCmdline, processState } from '../../drivers/qemu/host.ts';
import { guardDir, guardPidFile, isFenceGuard, readHeartbeat } from './fence-guard.ts';

/**
 * The fence guard (see fence-guard.ts): `node fence-guard-main.ts <stateDir>`. Kills this host's qemu
 * guests of domains that are restarted elsewhere when the host is lost (all of them until the agent
 * has said which) once the agent's heartbeat is older than its fence timeout, and exits once there is neither
 * an agent beating nor a guest to guard (the next agent starts another).
 */
const stateDir = process.argv[2];
if (!stateDir) process.exit(2);
const log = (message: string, fields: Record<string, unknown> = {}) =>
  appendFileSync(join(guardDir(stateDir), 'guard.log'), `${JSON.stringify({ time: new Date().toISOString(), message, ...fields })}\n`);

const alive = async (pid: number) => (await processState(pid)) === 'alive';

/** Another guard already runs for this host: it is the one. */
const other = Number(existsSync(guardPidFile(stateDir)) ? readFileSync(guardPidFile(stateDir), 'utf8') : 0);
if (other > 0 && other !== process.pid && (await alive(other)) && isFenceGuard(await processCmdline(other))) process.exit(0);
writeFileSync(guardPidFile(stateDir), String(process.pid));

/** The qemu guests this host's driver started, each checked against its recorded command line. */
const guests = async (): Promise<Array<{ uuid: string; pid: number }>> => {
  const dir = join(stateDir, 'qemu');
  const out = [];
  for (const uuid of existsSync(dir) ? readdirSync(dir) : []) {
    try {
      const rec = JSON.parse(readFileSync(join(dir, uuid, 'domain.json'), 'utf8')) as { binary: string; args: string[]; pidfile: string; pid?: number };
      const pid = Number.parseInt(readFileSync(rec.pidfile, 'utf8'), 10) || rec.pid || 0;
      const cmd = pid ? await processCmdline(pid) : undefined;
      if (cmd && cmd[0] === rec.binary && cmd.length === rec.args.length + 1 && (await alive(pid))) out.push({ uuid, pid });
    } catch {
      // Not (or no longer) a guest.
    }
  }
  return out;
};

for (;;) {
  const hb = readHeartbeat(stateDir);
  const fenceMs = hb?.fenceMs ?? 5000;
  const stale = !hb || Date.now() - hb.tickAt > fenceMs;
  if (stale) {
    // Only guests that may be restarted elsewhere can ever run twice; the others wait for their agent.
    const running = (await guests()).filter((g) => !hb?.fence || hb.fence.includes(g.uuid));
    for (const g of running) {
      try {
        process.kill(g.pid, 'SIGKILL');
        log('agent silent past its fence timeout: guest killed', { uuid: g.uuid, pid: g.pid, agentPid: hb?.pid, lastBeat: hb ? new Date(hb.tickAt).toISOString() : null });
      } catch {
        // Gone already.
      }
    }
    if (running.length === 0 && !(hb && (await alive(hb.pid)))) {
      log('no agent and no guest: guard exits');
      process.exit(0);
    }
  }
  await new Promise((r) => setTimeout(r, Math.max(20, Math.min(250, Math.floor(fenceMs / 10)))));
}
