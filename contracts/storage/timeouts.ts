import type { StorageOp } from './events.ts';

/** How long a storage operation may take on its host, by default. Schema-free: the CLI reads it for its option defaults. */
export const DEFAULT_STORAGE_TIMEOUT_MS: Record<StorageOp, number> = {
  'pool-build': 60_000,
  'pool-start': 60_000,
  'vol-create': 600_000,
  'vol-delete': 120_000,
  'pool-refresh': 60_000,
  'pool-delete': 60_000,
  'vol-resize': 600_000,
  // Both write every byte of a volume.
  'vol-wipe': 1_800_000,
  'vol-clone': 1_800_000,
};
