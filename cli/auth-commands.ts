import type { Command } from 'commander';
import type { VirtplaneClient } from '../client/index.ts';
import { BaseConfig, loadConfig } from '../platform/config.ts';
import type { Enrolled } from '../platform/security/enrol.ts';

interface Deps {
  out: () => { result(human: string, data: unknown): void };
  server: () => string | undefined;
  withClient: <T>(fn: (c: VirtplaneClient) => Promise<T>) => Promise<T>;
}

const say = (what: string, e: Enrolled, env: string) =>
  [
    `${what}`,
    `  context: ${e.context}`,
    `  seed:    ${e.seed} (keep it secret)`,
    `  run with: VIRTPLANE_NATS_CONTEXT=${e.context}${env}`,
    ...(e.reloaded ? [] : ['  reload the server to let it in: nats-server --signal reload (docker compose kill -s HUP nats)']),
  ].join('\n');

/** Enrolment: new principals and new keys, written where the server reads its users. */
export const registerAuthCommands = (program: Command, d: Deps) => {
  const common = (c: Command) =>
    c
      .option('--auth-dir <dir>', "the principals' directory (default: the embedded default's)")
      .option('--rotate', 'give it a new key; the old one stops working once the server reloads')
      .option('--reload-pid <pid>', 'nats-server to reload (default: the embedded default)');

  common(
    program
      .command('host-enroll')
      .description("give a host its credentials and permissions: its own tasks and reports, nothing of other hosts'")
      .argument('<hostId>', 'the host id its agent runs with')
      .option('--ack-wait-ms <ms>', "the agent's ack wait (VIRTPLANE_ACK_WAIT_MS)", '15000'),
  ).action(async (hostId: string, o: { authDir?: string; rotate?: boolean; reloadPid?: string; ackWaitMs: string }) => {
    const cfg = loadConfig(BaseConfig);
    const server = d.server();
    const { enrol } = await import('../platform/security/enrol.ts');
    const e = await enrol({
      name: hostId,
      role: 'host',
      dataDir: cfg.dataDir,
      replicas: cfg.replicas,
      ackWaitMs: Number(o.ackWaitMs),
      ...(o.authDir ? { authDir: o.authDir } : {}),
      ...(o.rotate ? { rotate: true } : {}),
      ...(o.reloadPid ? { reloadPid: Number(o.reloadPid) } : {}),
      ...(server ? { url: server } : {}),
    });
    // A host removed earlier may register again from now on; one never removed is unaffected.
    const readmit = await d.withClient((c) => c.hostReadmit(hostId)).catch((err: Error) => ({ readmitted: false, error: err.message }));
    const note = 'error' in readmit ? `\n  not readmitted (run host-enroll again once the command service answers): ${readmit.error}` : readmit.readmitted ? '\n  readmitted: it was removed, and may register again' : '';
    d.out().result(say(`Host '${hostId}' enrolled`, e, ` VIRTPLANE_HOST_ID=${hostId}`) + note, { hostId, ...e, readmit });
  });

  common(
    program
      .command('principal-add')
      .description('give a person or tool credentials: operator (commands, queries, feed) or auditor (read only)')
      .argument('<name>', 'the name the audit trail will show')
      .option('--role <role>', 'operator or auditor', 'operator'),
  ).action(async (name: string, o: { authDir?: string; rotate?: boolean; reloadPid?: string; role: string }) => {
    if (o.role !== 'operator' && o.role !== 'auditor') throw new Error(`--role must be operator or auditor, not '${o.role}'`);
    const cfg = loadConfig(BaseConfig);
    const { enrol } = await import('../platform/security/enrol.ts');
    const e = await enrol({
      name,
      role: o.role,
      dataDir: cfg.dataDir,
      ...(o.authDir ? { authDir: o.authDir } : {}),
      ...(o.rotate ? { rotate: true } : {}),
      ...(o.reloadPid ? { reloadPid: Number(o.reloadPid) } : {}),
    });
    d.out().result(say(`Principal '${name}' (${o.role}) added`, e, ''), { name, role: o.role, ...e });
  });
};
