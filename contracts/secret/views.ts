import { z } from 'zod';
import { PageRequest } from '../views.ts';
import type { SecretAggregate } from './decider.ts';
import { SecretDefinition } from './definition.ts';

/** What queries show of a secret: its definition and whether, when and by whom a value was set; never the value. */
export const SecretView = z.object({
  id: z.string(),
  definition: SecretDefinition,
  value: z.object({ setAt: z.string(), setBy: z.string() }).nullable(),
  version: z.number().int(),
});
export type SecretView = z.infer<typeof SecretView>;

export const toSecretView = (s: SecretAggregate): SecretView => ({
  id: s.id,
  definition: s.definition!,
  value: s.value ? { setAt: s.value.setAt, setBy: s.value.setBy } : null,
  version: s.version,
});

export const SecretGetRequest = z.object({
  secret: z.string().min(1).max(64),
  minVersion: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
});
export type SecretGetRequest = z.infer<typeof SecretGetRequest>;

export const SecretListRequest = z.object({
  /** virsh secret-list --ephemeral / --no-ephemeral / --private / --no-private. */
  ephemeral: z.boolean().optional(),
  private: z.boolean().optional(),
  minSeq: z.number().int().nonnegative().optional(),
  waitMs: z.number().int().min(0).max(30_000).optional(),
  ...PageRequest.shape,
});
export type SecretListRequest = z.infer<typeof SecretListRequest>;
