import { z } from 'zod';
import { AttrMap, Uuid } from '../domain/definition.ts';

/**
 * The stored forms of storage pools and volumes, parsed from and formatted to libvirt's pool and
 * volume XML. Sizes are bytes, as libvirt normalises them.
 */

export const StoragePoolType = z.enum([
  'dir', 'fs', 'netfs', 'logical', 'disk', 'iscsi', 'iscsi-direct', 'scsi', 'mpath', 'rbd', 'sheepdog', 'gluster', 'zfs', 'vstorage',
]);
export type StoragePoolType = z.infer<typeof StoragePoolType>;

const ObjectName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^\n/]+$/, 'name must not contain a newline or "/"');

/** `<permissions>`: mode is octal text as written ("0755"); -1 owner/group means "leave as is". */
export const Permissions = z
  .object({
    mode: z.string().regex(/^[0-7]{1,4}$/, 'mode must be octal, e.g. 0755'),
    owner: z.number().int().min(-1),
    group: z.number().int().min(-1),
    label: z.string(),
  })
  .partial();
export type Permissions = z.infer<typeof Permissions>;

export const PoolSource = z
  .object({
    hosts: z.array(z.object({ name: z.string(), port: z.number().int().min(0).max(65535).optional() })),
    devices: z.array(z.object({ path: z.string() })),
    dir: z.string(),
    /** scsi pools: `<adapter name=... type=... wwnn=... wwpn=...>`. */
    adapter: AttrMap,
    /** Volume group (logical), RBD pool, gluster volume, ZFS pool. */
    name: z.string(),
    format: z.string(),
    /** iscsi initiator IQN. */
    initiatorIqn: z.string(),
    auth: z
      .object({
        type: z.string().optional(),
        username: z.string().optional(),
        secret: z.object({ type: z.string(), usage: z.string(), uuid: z.string() }).partial().optional(),
      }),
    protocolVer: z.string(),
  })
  .partial();
export type PoolSource = z.infer<typeof PoolSource>;

export const StoragePoolDefinition = z.object({
  type: StoragePoolType,
  name: ObjectName,
  uuid: Uuid,
  capacityBytes: z.number().int().nonnegative().optional(),
  allocationBytes: z.number().int().nonnegative().optional(),
  availableBytes: z.number().int().nonnegative().optional(),
  source: PoolSource.optional(),
  target: z.object({ path: z.string().optional(), permissions: Permissions.optional() }).optional(),
  /** The document as virtplane stores it (formatted libvirt XML), when it came from XML. */
  xml: z.string().optional(),
});
export type StoragePoolDefinition = z.infer<typeof StoragePoolDefinition>;
export type StoragePoolDefinitionInput = z.input<typeof StoragePoolDefinition>;

export const StorageVolumeType = z.enum(['file', 'block', 'dir', 'network', 'netdir', 'ploop']);

export const StorageVolumeDefinition = z.object({
  type: StorageVolumeType.optional(),
  name: z
    .string()
    .min(1)
    .max(255)
    .refine((n) => !n.includes('/') && !n.includes('\n'), 'name must not contain "/" or a newline'),
  key: z.string().optional(),
  capacityBytes: z.number().int().nonnegative(),
  allocationBytes: z.number().int().nonnegative().optional(),
  physicalBytes: z.number().int().nonnegative().optional(),
  /** Extents of a volume inside its pool (disk and logical pools): `<source><device path>`. */
  source: z.object({ devices: z.array(z.object({ path: z.string() })).optional() }).optional(),
  target: z
    .object({
      path: z.string().optional(),
      format: z.string().optional(),
      permissions: Permissions.optional(),
      compat: z.string().optional(),
      nocow: z.boolean().optional(),
      /** `<features><lazy_refcounts/></features>`: feature element names. */
      features: z.array(z.string()).optional(),
    })
    .optional(),
  backingStore: z
    .object({ path: z.string().optional(), format: z.string().optional(), permissions: Permissions.optional() })
    .optional(),
  xml: z.string().optional(),
});
export type StorageVolumeDefinition = z.infer<typeof StorageVolumeDefinition>;
export type StorageVolumeDefinitionInput = z.input<typeof StorageVolumeDefinition>;
