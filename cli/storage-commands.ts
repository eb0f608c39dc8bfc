import { Option, type Command } from 'commander';
import type { PoolView, StorageAccepted, VirtplaneClient, VolumeView } from '../client/index.ts';
import { DEFAULT_STORAGE_TIMEOUT_MS } from '../contracts/storage/timeouts.ts';
import type { StorageOp } from '../contracts/storage/events.ts';
import { parseUnsignedBig, scaleInteger } from '../contracts/xml/units.ts';
import { readDocument } from './documents.ts';
import { isVirtError } from '../contracts/errors.ts';
import { VerbFailed } from './errors.ts';
import { parsePageSize, table } from './format.ts';

/** What cli/main.ts shares with the commands registered here. */
export interface StorageCliHelpers {
  out(): { result(human: string, data: unknown): void };
  withClient<T>(fn: (c: VirtplaneClient) => Promise<T>): Promise<T>;
  json(): boolean;
  /** An error that exits with status 2, as a usage mistake. */
  usageError(message: string): Error;
}

/** virsh's vshPrettyCapacity: two decimals in the largest binary unit that keeps the value >= 1. */
export const prettyCapacity = (bytes: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(2)} ${units[i]}`;
};

/** A size as virsh takes one (vshVolSize): digits and an optional unit, bytes when none is given. */
export const parseVolSize = (raw: string): number | undefined => {
  const m = /^\s*([0-9]+)\s*([A-Za-z]*)\s*$/.exec(raw);
  const n = m ? parseUnsignedBig(m[1]!) : undefined;
  if (n === undefined) return undefined;
  const r = scaleInteger(n, m![2], 1n, BigInt(Number.MAX_SAFE_INTEGER));
  return r.ok ? Number(r.value) : undefined;
};

const info = (rows: Array<[string, string]>): string => rows.map(([k, v]) => `${`${k}:`.padEnd(15)} ${v}`).join('\n');

export const poolInfo = (p: PoolView): string =>
  info([
    ['Name', p.name],
    ['UUID', p.id],
    ['State', p.state],
    ['Persistent', p.persistent ? 'yes' : 'no'],
    ['Autostart', p.autostart ? 'yes' : 'no'],
    ...(p.capacityBytes !== null ? ([['Capacity', prettyCapacity(p.capacityBytes)]] as Array<[string, string]>) : []),
    ...(p.allocationBytes !== null ? ([['Allocation', prettyCapacity(p.allocationBytes)]] as Array<[string, string]>) : []),
    ...(p.availableBytes !== null ? ([['Available', prettyCapacity(p.availableBytes)]] as Array<[string, string]>) : []),
    ['Host', p.hostId],
  ]);

export const poolList = (pools: PoolView[]): string =>
  table(
    ['Name', 'State', 'Autostart'],
    pools.map((p) => [p.name, p.active ? 'active' : p.state === 'building' ? 'building' : 'inactive', p.autostart ? 'yes' : 'no']),
  );

export const volList = (vols: VolumeView[]): string => table(['Name', 'Path'], vols.map((v) => [v.name, v.path]));

export const volInfo = (v: VolumeView): string =>
  info([
    ['Name', v.name],
    ['Type', v.type],
    ['Capacity', prettyCapacity(v.capacityBytes)],
    ['Allocation', prettyCapacity(v.allocationBytes)],
  ]);

/** virsh's storage pool and volume verbs. Host work (build, start, create, delete) is waited for unless --no-wait. */
export const registerStorageCommands = (program: Command, h: StorageCliHelpers): void => {
  const readInput = (file: string) => readDocument(file, h.usageError);

  const waiting = (cmd: Command, op: StorageOp) =>
    cmd
      .addOption(new Option('--wait', 'wait until the host has finished').default(true))
      .option('--no-wait', 'return once the command is accepted')
      .option('--timeout <seconds>', 'deadline for the host to finish; the operation is recorded failed after it', String(DEFAULT_STORAGE_TIMEOUT_MS[op] / 1000));

  /** Sends the command and, unless told not to, waits for the host's outcome. */
  const hostWork = async (
    o: { wait: boolean; timeout: string },
    label: (a: StorageAccepted) => string,
    send: (c: VirtplaneClient, timeoutSeconds: number) => Promise<StorageAccepted>,
  ): Promise<{ accepted: StorageAccepted; pool: PoolView | null }> => {
    const timeoutSeconds = Number(o.timeout);
    if (!(timeoutSeconds > 0)) throw h.usageError(`--timeout must be a positive number of seconds, not '${o.timeout}'`);
    return h.withClient(async (c) => {
      const accepted = await send(c, timeoutSeconds);
      if (!o.wait) return { accepted, pool: null };
      const pool = await (await import('./progress.ts')).withProgress(label(accepted), timeoutSeconds * 1000, !h.json(), () => c.storageOutcome(accepted, timeoutSeconds * 1000 + 5000));
      return { accepted, pool };
    });
  };

  /** A volume named on its own with --pool, as `pool/name`, or by its key (path). */
  const locate = async (c: VirtplaneClient, vol: string, pool?: string): Promise<{ pool: string; name: string }> => {
    if (pool) return { pool, name: vol };
    const v = await c.volGet(vol);
    return { pool: v.poolId, name: v.name };
  };

  program
    .command('pool-define')
    .description('define (or redefine) a storage pool from libvirt pool XML or a JSON definition')
    .argument('<file>', 'libvirt pool XML or a JSON definition')
    .option('--host <hostId>', 'the host the pool lives on (default: the only live host)')
    .action(async (file: string, o: { host?: string }) => {
      const input = { ...(await readInput(file)), ...(o.host ? { hostId: o.host } : {}) };
      const r = await h.withClient((c) => c.poolDefine(input));
      h.out().result(`Pool ${r.pool} defined from ${file}`, r);
    });

  waiting(
    program
      .command('pool-create')
      .description('create and start a storage pool from libvirt pool XML or a JSON definition; a new one is transient')
      .argument('<file>', 'libvirt pool XML or a JSON definition')
      .option('--host <hostId>', 'the host the pool lives on (default: the only live host)')
      .option('--build', 'build the pool first'),
    'pool-start',
  ).action(async (file: string, o: { wait: boolean; timeout: string; host?: string; build?: boolean }) => {
    const input = { ...(await readInput(file)), ...(o.host ? { hostId: o.host } : {}), ...(o.build ? { build: true } : {}) };
    const r = await hostWork(o, (a) => `create ${a.pool}`, (c, timeoutSeconds) => c.poolCreate(input, { timeoutSeconds }));
    h.out().result(`Pool ${r.accepted.pool} created from ${file}`, r);
  });

  waiting(program.command('pool-build').description('build a storage pool (a dir pool: create its directory)').argument('<pool>', 'name or uuid'), 'pool-build').action(
    async (pool: string, o: { wait: boolean; timeout: string }) => {
      const r = await hostWork(o, (a) => `build ${a.pool}`, (c, timeoutSeconds) => c.poolBuild(pool, { timeoutSeconds }));
      h.out().result(`Pool ${r.accepted.pool} built`, r);
    },
  );

  waiting(
    program
      .command('pool-start')
      .description('start (activate) an inactive storage pool')
      .argument('<pool>', 'name or uuid')
      .option('--build', 'build the pool first'),
    'pool-start',
  ).action(async (pool: string, o: { wait: boolean; timeout: string; build?: boolean }) => {
    const r = await hostWork(o, (a) => `start ${a.pool}`, (c, timeoutSeconds) => c.poolStart(pool, { timeoutSeconds, build: Boolean(o.build) }));
    h.out().result(`Pool ${r.accepted.pool} started`, r);
  });

  program
    .command('pool-destroy')
    .description('stop (deactivate) a storage pool; its data stays')
    .argument('<pool>', 'name or uuid')
    .action(async (pool: string) => {
      const r = await h.withClient((c) => c.poolDestroy(pool));
      h.out().result(`Pool ${r.pool} destroyed`, r);
    });

  program
    .command('pool-undefine')
    .description('undefine an inactive storage pool')
    .argument('<pool>', 'name or uuid')
    .action(async (pool: string) => {
      const r = await h.withClient((c) => c.poolUndefine(pool));
      h.out().result(`Pool ${r.pool} has been undefined`, r);
    });

  program
    .command('pool-list')
    .description('list storage pools (active ones unless --all)')
    .option('--all', 'include inactive pools')
    .option('--host <hostId>', 'only pools on this host')
    .option('--autostart', 'list pools with autostart enabled')
    .option('--no-autostart', 'list pools with autostart disabled')
    .option('--page-size <n>', 'pools per request (the list is read page by page to the end)', parsePageSize)
    .action(async (o: { all?: boolean; host?: string; pageSize?: number; autostart?: boolean }) => {
      const filter = { all: Boolean(o.all), ...(o.host ? { host: o.host } : {}), ...(o.pageSize ? { pageSize: o.pageSize } : {}), ...(o.autostart !== undefined ? { autostart: o.autostart } : {}) };
      const pools = await h.withClient((c) => c.poolList(filter));
      h.out().result(poolList(pools), pools);
    });

  program
    .command('pool-info')
    .description('storage pool information')
    .argument('<pool>', 'name or uuid')
    .action(async (pool: string) => {
      const p = await h.withClient((c) => c.poolGet(pool));
      h.out().result(poolInfo(p), p);
    });

  program
    .command('pool-dumpxml')
    .description('the storage pool as libvirt XML, as virtplane stores it')
    .argument('<pool>', 'name or uuid')
    .option('--inactive', 'the definition that applies at the next start, when one was recorded while the pool ran')
    .action(async (pool: string, o: { inactive?: boolean }) => {
      const p = await h.withClient((c) => c.poolGet(pool));
      const def = o.inactive && p.nextDefinition ? p.nextDefinition : p.definition;
      const xml = def.xml ?? (await import('../contracts/xml/index.ts')).formatPoolXml(def);
      h.out().result(xml.trimEnd(), { poolId: p.id, xml });
    });

  waiting(
    program
      .command('vol-create')
      .description('create a volume in an active pool from libvirt volume XML or a JSON definition')
      .argument('<pool>', 'pool name or uuid')
      .argument('<file>', 'libvirt volume XML or a JSON definition'),
    'vol-create',
  ).action(async (pool: string, file: string, o: { wait: boolean; timeout: string }) => {
    const input = await readInput(file);
    const r = await hostWork(o, (a) => `create ${a.volume ?? 'volume'}`, (c, timeoutSeconds) => c.volCreate(pool, input, { timeoutSeconds }));
    h.out().result(`Vol ${r.accepted.volume} created from ${file}`, r);
  });

  waiting(
    program
      .command('vol-delete')
      .description('delete a volume and its file')
      .argument('<vol>', 'volume name (with --pool), pool/name, or key (path)')
      .option('--pool <pool>', 'pool name or uuid'),
    'vol-delete',
  ).action(async (vol: string, o: { wait: boolean; timeout: string; pool?: string }) => {
    const r = await hostWork(o, (a) => `delete ${a.volume ?? vol}`, async (c, timeoutSeconds) => {
      const where = await locate(c, vol, o.pool);
      return c.volDelete(where.pool, where.name, { timeoutSeconds });
    });
    h.out().result(`Vol ${r.accepted.volume ?? vol} deleted`, r);
  });

  const size = (what: string, raw: string): number => {
    const v = parseVolSize(raw);
    if (v === undefined) throw h.usageError(`Malformed size ${raw}${what === 'capacity' ? '' : ` for --${what}`}`);
    return v;
  };

  waiting(
    program
      .command('vol-create-as')
      .description('create a volume from a name and a capacity, without an XML file')
      .argument('<pool>', 'pool name or uuid')
      .argument('<name>', 'name of the volume')
      .argument('<capacity>', 'size of the volume, a scaled integer (default bytes): 10G, 512MiB')
      .option('--allocation <size>', 'initial allocation (raw: all of it preallocates the file)')
      .option('--format <format>', 'file format: raw or qcow2')
      .option('--backing-vol <vol>', 'the backing volume, for a qcow2 snapshot of it')
      .option('--backing-vol-format <format>', 'format of the backing volume'),
    'vol-create',
  ).action(
    async (pool: string, name: string, capacity: string, o: { wait: boolean; timeout: string; allocation?: string; format?: string; backingVol?: string; backingVolFormat?: string }) => {
      const definition: Record<string, unknown> = {
        name,
        capacityBytes: size('capacity', capacity),
        ...(o.allocation !== undefined ? { allocationBytes: size('allocation', o.allocation) } : {}),
        ...(o.format ? { target: { format: o.format } } : {}),
        ...(o.backingVol ? { backingStore: { path: o.backingVol, ...(o.backingVolFormat ? { format: o.backingVolFormat } : {}) } } : {}),
      };
      const r = await hostWork(o, () => `create ${name}`, (c, timeoutSeconds) => c.volCreate(pool, { definition }, { timeoutSeconds }));
      h.out().result(`Vol ${r.accepted.volume ?? name} created`, r);
    },
  );

  waiting(
    program
      .command('vol-resize')
      .description("change a volume's capacity")
      .argument('<vol>', 'volume name (with --pool), pool/name, or key (path)')
      .argument('<capacity>', 'new capacity, a scaled integer; with --delta the change; negative with --shrink')
      .option('--pool <pool>', 'pool name or uuid')
      .option('--delta', 'change the capacity by this amount')
      .option('--shrink', 'allow the capacity to go down (data past the new end is lost)'),
    'vol-resize',
  ).action(async (vol: string, capacity: string, o: { wait: boolean; timeout: string; pool?: string; delta?: boolean; shrink?: boolean }) => {
    let raw = capacity;
    if (raw.startsWith('-')) {
      // virsh takes a negative size for convenience, only when shrinking is allowed.
      if (!o.shrink) throw h.usageError('negative size requires --shrink');
      raw = raw.slice(1);
    }
    const capacityBytes = size('capacity', raw);
    const r = await hostWork(o, (a) => `resize ${a.volume ?? vol}`, async (c, timeoutSeconds) => {
      const where = await locate(c, vol, o.pool);
      return c.volResize(where.pool, where.name, capacityBytes, { timeoutSeconds, delta: Boolean(o.delta), shrink: Boolean(o.shrink) });
    });
    h.out().result(`Size of volume '${r.accepted.volume ?? vol}' successfully changed to ${capacity}`, r);
  });

  waiting(
    program
      .command('vol-wipe')
      .description("overwrite a volume's content with zeros")
      .argument('<vol>', 'volume name (with --pool), pool/name, or key (path)')
      .option('--pool <pool>', 'pool name or uuid')
      .option('--algorithm <algorithm>', 'only zero, the default, is offered'),
    'vol-wipe',
  ).action(async (vol: string, o: { wait: boolean; timeout: string; pool?: string; algorithm?: string }) => {
    if (o.algorithm !== undefined && o.algorithm !== 'zero') throw h.usageError(`Unsupported algorithm '${o.algorithm}'`);
    const r = await hostWork(o, (a) => `wipe ${a.volume ?? vol}`, async (c, timeoutSeconds) => {
      const where = await locate(c, vol, o.pool);
      return c.volWipe(where.pool, where.name, { timeoutSeconds });
    });
    h.out().result(`Vol ${r.accepted.volume ?? vol} wiped`, r);
  });

  waiting(
    program
      .command('vol-clone')
      .description('copy a volume to a new volume in the same pool')
      .argument('<vol>', 'volume name (with --pool), pool/name, or key (path)')
      .argument('<newname>', 'name of the copy')
      .option('--pool <pool>', 'pool name or uuid'),
    'vol-clone',
  ).action(async (vol: string, newName: string, o: { wait: boolean; timeout: string; pool?: string }) => {
    let source = vol;
    const r = await hostWork(o, () => `clone ${vol} to ${newName}`, async (c, timeoutSeconds) => {
      const where = await locate(c, vol, o.pool);
      source = where.name;
      return c.volClone(where.pool, where.name, newName, { timeoutSeconds });
    });
    h.out().result(`Vol ${newName} cloned from ${source}`, r);
  });

  waiting(program.command('pool-refresh').description('look again at what a pool holds').argument('<pool>', 'name or uuid'), 'pool-refresh').action(
    async (pool: string, o: { wait: boolean; timeout: string }) => {
      const r = await hostWork(o, (a) => `refresh ${a.pool}`, (c, timeoutSeconds) => c.poolRefresh(pool, { timeoutSeconds }));
      h.out().result(`Pool ${r.accepted.pool} refreshed`, r);
    },
  );

  waiting(
    program.command('pool-delete').description("remove an inactive pool's directory (it must be empty); the pool stays defined").argument('<pool>', 'name or uuid'),
    'pool-delete',
  ).action(async (pool: string, o: { wait: boolean; timeout: string }) => {
    const r = await hostWork(o, (a) => `delete ${a.pool}`, (c, timeoutSeconds) => c.poolDelete(pool, { timeoutSeconds }));
    h.out().result(`Pool ${r.accepted.pool} deleted`, r);
  });

  /** virsh's plain unsigned integer options (vshCommandOptULongLong), no units. */
  const bytesOption = (name: string) => (raw: string) => {
    if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw h.usageError(`Numeric value '${raw}' for <${name}> option is malformed or out of range`);
    return Number(raw);
  };
  /** virsh's lines: "failed to get vol/pool" when the volume is not found, else `headline` over libvirt's message. */
  const transfer = async <T>(vol: string, pool: string | undefined, headline: string, fn: (c: VirtplaneClient) => Promise<T>): Promise<T> =>
    h.withClient(fn).catch((e: unknown) => {
      if (!isVirtError(e)) throw e;
      if (e.code === 'no-storage-pool' && pool) throw new VerbFailed(`failed to get pool '${pool}'`, e);
      if (e.code === 'no-storage-vol') throw new VerbFailed(`failed to get vol '${vol}'${pool ? '' : ', specifying --pool might help'}`, e);
      throw new VerbFailed(headline, e);
    });
  const transferOptions = (cmd: Command) =>
    cmd
      .argument('<vol>', 'volume name (with --pool), pool/name, or key (path)')
      .argument('<file>', 'the local file')
      .option('--pool <pool>', 'pool name or uuid')
      .option('--offset <bytes>', 'where in the volume to start', bytesOption('offset'))
      .option('--length <bytes>', 'how many bytes at most (0: all)', bytesOption('length'));

  transferOptions(program.command('vol-upload').description("write a file's bytes into a volume, streamed to the pool's host"))
    .option('--sparse', 'send runs of zeros as holes, keeping them holes in the volume')
    .action(async (vol: string, file: string, o: { pool?: string; offset?: number; length?: number; sparse?: boolean }) => {
      const r = await transfer(vol, o.pool, `cannot upload to volume ${vol}`, (c) => c.volUpload(vol, file, o));
      // virsh says nothing on success.
      if (h.json()) h.out().result('', r);
    });

  transferOptions(program.command('vol-download').description("write a volume's bytes into a file, streamed from the pool's host")).action(
    async (vol: string, file: string, o: { pool?: string; offset?: number; length?: number }) => {
      const r = await transfer(vol, o.pool, `cannot download from volume ${vol}`, (c) => c.volDownload(vol, file, o));
      if (h.json()) h.out().result('', r);
    },
  );

  program
    .command('vol-list')
    .description('list the volumes of an active pool')
    .argument('<pool>', 'pool name or uuid')
    .option('--page-size <n>', 'volumes per request (the list is read page by page to the end)', parsePageSize)
    .action(async (pool: string, o: { pageSize?: number }) => {
      const vols = await h.withClient((c) => c.volList(pool, o.pageSize ? { pageSize: o.pageSize } : {}));
      h.out().result(volList(vols), vols);
    });

  program
    .command('vol-info')
    .description('storage volume information')
    .argument('<vol>', 'volume name (with --pool), pool/name, or key (path)')
    .option('--pool <pool>', 'pool name or uuid')
    .action(async (vol: string, o: { pool?: string }) => {
      const v = await h.withClient((c) => c.volGet(vol, o.pool ? { pool: o.pool } : {}));
      h.out().result(volInfo(v), v);
    });

  program
    .command('vol-dumpxml')
    .description('the storage volume as libvirt XML')
    .argument('<vol>', 'volume name (with --pool), pool/name, or key (path)')
    .option('--pool <pool>', 'pool name or uuid')
    .action(async (vol: string, o: { pool?: string }) => {
      const v = await h.withClient((c) => c.volGet(vol, o.pool ? { pool: o.pool } : {}));
      const xml = v.definition.xml ?? (await import('../contracts/xml/index.ts')).formatVolumeXml(v.definition);
      h.out().result(xml.trimEnd(), { pool: v.pool, volume: v.name, xml });
    });
};
