import type { Command } from 'commander';
import type { CliHelpers } from './network-commands.ts';

/**
 * virsh's look-ups between names, uuids, keys and paths of networks, pools and volumes, answered
 * from the views: net-name, net-uuid, pool-name, pool-uuid, vol-name, vol-key, vol-path, vol-pool.
 */
export const registerLookupCommands = (program: Command, h: CliHelpers): void => {
  const one = (verb: string, description: string, arg: string, read: (ref: string, pool?: string) => Promise<string>, withPool = false) => {
    const cmd = program.command(verb).description(description).argument(`<${arg}>`, arg);
    if (withPool) cmd.option('--pool <pool>', 'the pool the volume is in (when given by name)');
    cmd.action(async (ref: string, o: { pool?: string }) => {
      const value = await read(ref, o.pool);
      h.out().result(value, { [verb.split('-')[1]!]: value });
    });
  };
  one('net-name', "a network's name, from its uuid", 'network', (ref) => h.withClient(async (c) => (await c.netGet(ref)).name));
  one('net-uuid', "a network's uuid, from its name", 'network', (ref) => h.withClient(async (c) => (await c.netGet(ref)).id));
  one('pool-name', "a storage pool's name, from its uuid", 'pool', (ref) => h.withClient(async (c) => (await c.poolGet(ref)).name));
  one('pool-uuid', "a storage pool's uuid, from its name", 'pool', (ref) => h.withClient(async (c) => (await c.poolGet(ref)).id));
  const vol = (ref: string, pool?: string) => h.withClient((c) => c.volGet(ref, pool ? { pool } : {}));
  one('vol-name', "a volume's name, from its key or path", 'vol', async (ref, pool) => (await vol(ref, pool)).name, true);
  one('vol-key', "a volume's key, from its name (with --pool) or path", 'vol', async (ref, pool) => (await vol(ref, pool)).key, true);
  one('vol-path', "a volume's path, from its name (with --pool) or key", 'vol', async (ref, pool) => (await vol(ref, pool)).path, true);
  one('vol-pool', "the pool a volume is in, from its key or path", 'vol', async (ref, pool) => (await vol(ref, pool)).pool, true);
};
