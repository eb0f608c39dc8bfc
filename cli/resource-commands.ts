import type { Command } from 'commander';
import { isActive } from '../contracts/domain/state.ts';
import { currentVcpus, type ResourceChange } from '../contracts/domain/resources.ts';
import { virtError } from '../contracts/errors.ts';
import { failing, VerbFailed } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/** virsh setmem, setmaxmem, setvcpus (recorded in the log) and vcpucount (read from the views). */

interface Scope {
  live?: boolean;
  config?: boolean;
  current?: boolean;
}

/** Units of virsh's scaled integers: a bare number is KiB; k, M, G, T are powers of 1024, KB, MB ... of 1000. */
const UNITS: Record<string, number> = { b: 1, bytes: 1, '': 1024, k: 1024, kib: 1024, kb: 1000, m: 1024 ** 2, mib: 1024 ** 2, mb: 1e6, g: 1024 ** 3, gib: 1024 ** 3, gb: 1e9, t: 1024 ** 4, tib: 1024 ** 4, tb: 1e12 };

/** A size as virsh reads a scaled `<size>` (KiB when bare), in bytes. */
export const parseBytes = (text: string): number | undefined => {
  const m = /^(\d+)([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
};

/** A size as virsh reads `<size>`, in KiB (rounded up, as libvirt rounds to its unit). */
export const parseSize = (text: string): number | undefined => {
  const m = /^(\d+)([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const kib = Math.ceil((Number(m[1]) * unit) / 1024);
  return Number.isSafeInteger(kib) ? kib : undefined;
};

export const registerResourceCommands = (program: Command, h: CliHelpers): void => {
  const scoped = (cmd: Command) =>
    cmd
      .option('--config', 'the persistent definition (the next boot)')
      .option('--live', 'the running domain')
      .option('--current', 'the running domain if it runs, the persistent definition otherwise');
  /** virsh's VSH_EXCLUSIVE_OPTIONS for --current. */
  const scope = (o: Scope) => {
    if (o.current && o.live) throw h.usageError('Options --current and --live are mutually exclusive');
    if (o.current && o.config) throw h.usageError('Options --current and --config are mutually exclusive');
    return { ...(o.live ? { live: true } : {}), ...(o.config ? { config: true } : {}) };
  };
  const size = (text: string) => {
    const kib = parseSize(text);
    if (kib === undefined) throw h.usageError(`Scaled numeric value '${text}' for <size> option is malformed or out of range`);
    return kib;
  };
  /**
   * virsh calls the flagless API when no scope is given: virDomainSetMemory and virDomainSetVcpus
   * change the running domain only, virDomainSetMaxMemory whichever the state makes current.
   */
  const send = (domain: string, headline: string | null, change: ResourceChange, o: Scope) => {
    const flagless = !o.live && !o.config && !o.current && change.kind !== 'max-memory';
    return failing(headline, domain, () =>
      h.withClient(async (c) => {
        const accepted = await c.setResources(domain, change, flagless ? { live: true } : scope(o));
        // A running guest's balloon is set by its host: the command is done once the host has.
        if (accepted.taskId) await c.outcome(accepted, 120_000);
        return accepted;
      }),
    );
  };

  scoped(program.command('setmem').description("change a domain's current memory (the balloon's target)"))
    .argument('<domain>', 'name or uuid')
    .argument('<size>', 'KiB, or with a unit: 512M, 1G')
    .action(async (domain: string, text: string, o: Scope) => {
      const kib = size(text);
      if (kib === 0) throw new VerbFailed(null, virtError('invalid-arg', 'memory must not be zero'), 'memory in virDomainSetMemoryFlags must not be zero');
      const r = await send(domain, null, { kind: 'memory', kib }, o);
      h.out().result('', r);
    });

  scoped(program.command('setmaxmem').description("change a domain's maximum memory"))
    .argument('<domain>', 'name or uuid')
    .argument('<size>', 'KiB, or with a unit: 512M, 1G')
    .action(async (domain: string, text: string, o: Scope) => {
      const kib = size(text);
      if (kib === 0) throw new VerbFailed('Unable to change MaxMemorySize', virtError('invalid-arg', 'memory must not be zero'), 'memory in virDomainSetMemoryFlags must not be zero');
      const r = await send(domain, 'Unable to change MaxMemorySize', { kind: 'max-memory', kib }, o);
      h.out().result('', r);
    });

  scoped(program.command('setvcpus').description("change a domain's vCPUs online, or with --maximum --config its vCPU count"))
    .argument('<domain>', 'name or uuid')
    .argument('<count>', 'number of vCPUs')
    .option('--maximum', 'the maximum (needs --config)')
    .action(async (domain: string, text: string, o: Scope & { maximum?: boolean }) => {
      if (!/^\d+$/.test(text)) throw h.usageError(`Numeric value '${text}' for <count> option is malformed or out of range`);
      if (o.maximum && !o.config) throw h.usageError('Option --config is required by option --maximum');
      const count = Number(text);
      if (count === 0) throw new VerbFailed(null, virtError('invalid-arg', 'no vCPUs'), "Can't set 0 processors for a VM");
      const r = await send(domain, null, { kind: 'vcpus', count, ...(o.maximum ? { maximum: true } : {}) }, o);
      h.out().result('', r);
    });

  program
    .command('vcpucount')
    .description("a domain's vCPU counts: maximum and current, persistent and live")
    .argument('<domain>', 'name or uuid')
    .option('--maximum', 'the maximum')
    .option('--active', 'the vCPUs online')
    .option('--config', 'of the persistent definition')
    .option('--live', 'of the running domain')
    .option('--current', 'of the running domain if it runs, the persistent definition otherwise')
    .action(async (domain: string, o: { maximum?: boolean; active?: boolean; config?: boolean; live?: boolean; current?: boolean }) => {
      if (o.maximum && o.active) throw h.usageError('Options --active and --maximum are mutually exclusive');
      if (o.config && o.live) throw h.usageError('Options --config and --live are mutually exclusive');
      scope(o);
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const running = isActive(v.observed.state);
      const config = v.nextDefinition ?? v.definition;
      const rows: Array<[string, string, number]> = [
        ['maximum', 'config', config.vcpus],
        ...(running ? [['maximum', 'live', v.definition.vcpus] as [string, string, number]] : []),
        ['current', 'config', currentVcpus(config)],
        ...(running ? [['current', 'live', currentVcpus(v.definition)] as [string, string, number]] : []),
      ];
      if (!o.maximum && !o.active && !o.config && !o.live && !o.current) {
        h.out().result(rows.map(([a, b, n]) => `${a.padEnd(12)} ${b.padEnd(12)} ${String(n).padStart(3)}`).join('\n'), rows.map(([kind, of, count]) => ({ kind, of, count })));
        return;
      }
      // One number: the maximum or those online, of the definition the flags (or the state) name.
      if (o.live && !running) throw new VerbFailed(null, virtError('operation-invalid', 'domain is not running', { domain: v.name }));
      const def = o.config || (!o.live && !running) ? config : v.definition;
      const n = o.maximum ? def.vcpus : currentVcpus(def);
      h.out().result(String(n), { count: n });
    });
};
