import type { Command } from 'commander';
import type { VirtplaneClient } from '../client/index.ts';
import type { EvacuatedDomain } from '../client/evacuation.ts';
import { virtError } from '../contracts/errors.ts';

interface Deps {
  out: () => { result(human: string, data: unknown): void };
  withClient: <T>(fn: (c: VirtplaneClient) => Promise<T>) => Promise<T>;
  json: () => boolean;
}

const line = (d: EvacuatedDomain) =>
  d.outcome === 'moved' ? `  ${d.name}: moved to ${d.hostId} (${d.state ?? '?'})` : `  ${d.name}: ${d.outcome}: ${d.error ?? ''}`;

/** host-evacuate and host-remove: taking a host out of the fleet. */
export const registerHostCommands = (program: Command, d: Deps) => {
  const evacuate = async (c: VirtplaneClient, host: string, o: { force?: boolean; timeout: string }) => {
    const [{ evacuateHost }, { countingBar }] = await Promise.all([import('../client/evacuation.ts'), import('./progress.ts')]);
    const bar = countingBar(`evacuate ${host}`, !d.json());
    try {
      return await evacuateHost(c, host, { force: o.force ?? false, timeoutMs: Number(o.timeout) * 1000, onProgress: (p) => bar.update(p.done, p.total) });
    } finally {
      bar.stop();
    }
  };

  program
    .command('host-evacuate')
    .description('maintenance on, then every domain of the host stopped there and restarted (or, if it was off, defined) on other hosts')
    .argument('<host>', 'host id')
    .option('--force', 'the host is lost and you know it is off: its domains of unknown state may go')
    .option('--timeout <seconds>', 'give up waiting after this long (what was started carries on)', '300')
    .action(async (host: string, o: { force?: boolean; timeout: string }) => {
      const results = await d.withClient((c) => evacuate(c, host, o));
      const moved = results.filter((r) => r.outcome === 'moved').length;
      const human = [`Host '${host}' evacuated: ${moved} of ${results.length} domain(s) moved`, ...results.map(line)].join('\n');
      d.out().result(human, { hostId: host, domains: results });
      if (moved !== results.length) throw virtError('operation-failed', `${results.length - moved} domain(s) of host '${host}' did not move`);
    });

  program
    .command('host-remove')
    .description('remove a host with no domains; it may not register again until it is enrolled again (host-enroll)')
    .argument('<host>', 'host id')
    .option('--force', 'the host is lost and you know it is off: evacuate its domains first, then remove it')
    .option('--timeout <seconds>', 'how long the evacuation may take', '300')
    .action(async (host: string, o: { force?: boolean; timeout: string }) => {
      const r = await d.withClient(async (c) => {
        if (o.force) {
          const results = await evacuate(c, host, { force: true, timeout: o.timeout });
          const left = results.filter((x) => x.outcome !== 'moved');
          if (left.length > 0) throw virtError('operation-failed', `host '${host}' not removed: ${left.length} domain(s) did not move\n${left.map(line).join('\n')}`);
        }
        return c.hostRemove(host);
      });
      d.out().result(`Host '${r.hostId}' removed: it may register again only once enrolled again (virtplane host-enroll ${r.hostId} --rotate)`, r);
    });
};
