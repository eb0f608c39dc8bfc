import {
  StoragePoolDefinition,
  StoragePoolType,
  StorageVolumeDefinition,
  StorageVolumeType,
  type StoragePoolDefinitionInput,
  type StorageVolumeDefinitionInput,
} from '../storage/definition.ts';
import {
  attr,
  attrs,
  child,
  childAttr,
  childText,
  custom,
  flag,
  int,
  invalid,
  list,
  obj,
  oneOf,
  scaledText,
  str,
  uuid,
  type Codec,
  type Conv,
  type ScaleOptions,
} from './codec.ts';
import { formatWith, parseWith, type Generators, type KindSpec, type ParseOptions } from './common.ts';
import { xmlError } from './errors.ts';
import { childElements, element, type XElement } from './tree.ts';
import { ULLONG_MAX } from './units.ts';

/** Storage sizes default to bytes and are written back in bytes, as libvirt's formatter does. */
const BYTES: ScaleOptions = { defaultScale: 1n, modelScale: 1n, unit: 'bytes', limit: ULLONG_MAX, normalize: true };

const s = str;

/** libvirt parses the mode as octal and refuses bits outside 0777. */
const octalMode: Conv<string> = {
  parse(raw, where) {
    const v = raw.trim();
    if (!/^[0-7]{1,4}$/.test(v) || parseInt(v, 8) > 0o777) throw invalid(where, raw, 'an octal mode such as 0755');
    return v;
  },
  format: (v) => v,
};
const id = int(-1, 0xffffffff);

const permissions = obj(
  { mode: childText('mode', octalMode), owner: childText('owner', id), group: childText('group', id), label: childText('label', s) },
  ['mode', 'owner', 'group', 'label'],
);

// ---------------------------------------------------------------------------------------------
// Pools

const poolCodec = obj(
  {
    type: attr('type', oneOf(StoragePoolType.options)),
    name: childText('name', s),
    uuid: childText('uuid', uuid),
    capacityBytes: child('capacity', scaledText(BYTES)),
    allocationBytes: child('allocation', scaledText(BYTES)),
    availableBytes: child('available', scaledText(BYTES)),
    source: child(
      'source',
      obj(
        {
          hosts: list('host', obj({ name: attr('name', s), port: attr('port', int(0, 65535)) })),
          devices: list('device', obj({ path: attr('path', s) })),
          dir: childAttr('dir', 'path', s),
          adapter: child('adapter', attrs()),
          name: childText('name', s),
          format: childAttr('format', 'type', s),
          initiatorIqn: child('initiator', childAttr('iqn', 'name', s), { prune: true }),
          auth: child(
            'auth',
            obj({
              type: attr('type', s),
              username: attr('username', s),
              secret: child('secret', obj({ type: attr('type', s), usage: attr('usage', s), uuid: attr('uuid', s) })),
            }),
          ),
          protocolVer: childAttr('protocol', 'ver', s),
        },
        ['host', 'device', 'dir', 'adapter', 'name', 'format', 'auth', 'vendor', 'product', 'initiator', 'protocol'],
      ),
    ),
    target: child(
      'target',
      obj({ path: childText('path', s), permissions: child('permissions', permissions) }, ['path', 'permissions']),
    ),
  },
  ['name', 'uuid', 'capacity', 'allocation', 'available', 'features', 'source', 'target'],
);

type PoolNeeds = { host?: true; device?: true; dir?: true; name?: true; adapter?: true; iqn?: true; target?: 'required' | 'logical' | 'zfs' };

/** What each pool type must name (libvirt's per-type source flags and target rules). */
const POOL_NEEDS: Record<StoragePoolType, PoolNeeds> = {
  dir: { target: 'required' },
  fs: { device: true, target: 'required' },
  netfs: { host: true, dir: true, target: 'required' },
  logical: { target: 'logical' },
  disk: { device: true, target: 'required' },
  iscsi: { host: true, device: true, target: 'required' },
  'iscsi-direct': { host: true, device: true, iqn: true },
  scsi: { adapter: true, target: 'required' },
  mpath: { target: 'required' },
  rbd: { host: true, name: true },
  sheepdog: { host: true, name: true },
  gluster: { host: true, name: true },
  zfs: { name: true, target: 'zfs' },
  vstorage: { name: true, target: 'required' },
};

function poolPreValidate(raw: Record<string, any>, root: XElement): void {
  if (root.attrs.type === undefined) throw xmlError("missing storage pool type attribute: <pool type='dir|fs|netfs|logical|...'> is required", { path: '/pool/@type' });
  if (raw.name === undefined || raw.name.trim() === '') throw xmlError('missing storage pool name: <name> is required', { path: '/pool/name' });
  const needs = POOL_NEEDS[raw.type as StoragePoolType];
  const src = raw.source ?? {};
  const missing = (what: string, path: string) => xmlError(`missing storage pool source ${what} for a '${raw.type}' pool (${path})`, { path });
  if (needs.host && !(src.hosts?.length > 0)) throw missing('host name', '/pool/source/host');
  if (needs.device && !(src.devices?.length > 0)) throw missing('device path', '/pool/source/device');
  if (needs.dir && src.dir === undefined) throw missing('path', '/pool/source/dir');
  if (needs.adapter && src.adapter === undefined) throw missing('adapter', '/pool/source/adapter');
  if (needs.iqn && src.initiatorIqn === undefined) throw missing('initiator IQN', '/pool/source/initiator/iqn');
  if (needs.name && raw.type !== 'logical' && src.name === undefined) throw missing('name element', '/pool/source/name');
  if (needs.target === 'required' && raw.target?.path === undefined) {
    throw xmlError(`missing storage pool target path for a '${raw.type}' pool (/pool/target/path)`, { path: '/pool/target/path' });
  }
}

function poolGenerate(raw: Record<string, any>, gen: Generators): void {
  raw.uuid ??= gen.uuid();
}

function poolNormalize(raw: Record<string, any>): void {
  if (raw.type === 'logical') {
    raw.source = { ...raw.source, name: raw.source?.name ?? raw.name };
    if (raw.target?.path === undefined) raw.target = { ...raw.target, path: `/dev/${raw.source.name}` };
  }
  if (raw.type === 'zfs' && raw.target?.path === undefined && raw.source?.name !== undefined) {
    raw.target = { ...raw.target, path: `/dev/zvol/${raw.source.name}` };
  }
}

export const poolSpec: KindSpec<StoragePoolDefinition> = {
  kind: 'storage pool',
  root: 'pool',
  codec: poolCodec,
  schema: StoragePoolDefinition,
  preValidate: poolPreValidate,
  generate: poolGenerate,
  normalize: poolNormalize,
};

// ---------------------------------------------------------------------------------------------
// Volumes

/** `<features><lazy_refcounts/></features>`: the names of the feature elements. */
const volFeatures: Codec<string[]> = custom(
  (el) => childElements(el).map((c) => c.name),
  (el, value) => {
    const want = new Set(value ?? []);
    el.children = el.children.filter((c) => typeof c !== 'object' || !('name' in c) || want.has(c.name));
    const present = new Set(childElements(el).map((c) => c.name));
    for (const name of want) if (!present.has(name)) el.children.push(element(name));
  },
);

const volumeCodec = obj(
  {
    type: attr('type', oneOf(StorageVolumeType.options)),
    name: childText('name', s),
    key: childText('key', s),
    source: child('source', obj({ devices: list('device', obj({ path: attr('path', s) })) })),
    capacityBytes: child('capacity', scaledText(BYTES)),
    allocationBytes: child('allocation', scaledText(BYTES)),
    physicalBytes: child('physical', scaledText(BYTES)),
    target: child(
      'target',
      obj(
        {
          path: childText('path', s),
          format: childAttr('format', 'type', s),
          permissions: child('permissions', permissions),
          compat: childText('compat', s),
          nocow: flag('nocow'),
          features: child('features', volFeatures),
        },
        ['path', 'format', 'permissions', 'timestamps', 'compat', 'clusterSize', 'nocow', 'features', 'encryption'],
      ),
    ),
    backingStore: child(
      'backingStore',
      obj({ path: childText('path', s), format: childAttr('format', 'type', s), permissions: child('permissions', permissions) }, [
        'path',
        'format',
        'permissions',
        'timestamps',
      ]),
    ),
  },
  ['name', 'key', 'source', 'capacity', 'allocation', 'physical', 'target', 'backingStore'],
);

function volumePreValidate(raw: Record<string, any>): void {
  if (raw.name === undefined || raw.name.trim() === '') throw xmlError('missing volume name element: <name> is required', { path: '/volume/name' });
  if (raw.capacityBytes === undefined) throw xmlError('missing capacity element: <capacity> is required', { path: '/volume/capacity' });
}

function volumeNormalize(raw: Record<string, any>): void {
  // libvirt treats a volume without <allocation> as fully allocated.
  raw.allocationBytes ??= raw.capacityBytes;
}

export const volumeSpec: KindSpec<StorageVolumeDefinition> = {
  kind: 'storage volume',
  root: 'volume',
  codec: volumeCodec,
  schema: StorageVolumeDefinition,
  preValidate: volumePreValidate,
  normalize: volumeNormalize,
};

export const parsePoolXml = (text: string, opts?: ParseOptions): StoragePoolDefinition => parseWith(poolSpec, text, opts);
export const formatPoolXml = (def: StoragePoolDefinition | StoragePoolDefinitionInput): string => formatWith(poolSpec, def);
export const parseVolumeXml = (text: string, opts?: ParseOptions): StorageVolumeDefinition => parseWith(volumeSpec, text, opts);
export const formatVolumeXml = (def: StorageVolumeDefinition | StorageVolumeDefinitionInput): string => formatWith(volumeSpec, def);
