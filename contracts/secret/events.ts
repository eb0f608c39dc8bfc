import { z } from 'zod';
import { NameClaimRevoked } from '../name-claim.ts';
import { SecretDefinition } from './definition.ts';

/**
 * Events of the secret aggregate. None of them holds a secret's value, in clear or encrypted: a set
 * value is recorded by the id of its ciphertext (kept by the command service in its own bucket) and
 * a keyed digest that only the holder of the secret key can compute, so the log proves that and
 * when a value was set, and by whom, and nothing about what it is.
 */
export const SecretEventBody = z.discriminatedUnion('type', [
  z.object({ type: z.literal('SecretDefined'), data: z.object({ definition: SecretDefinition }) }),
  z.object({ type: z.literal('SecretUndefined'), data: z.object({}) }),
  z.object({
    type: z.literal('SecretValueSet'),
    data: z.object({
      /** Names the ciphertext in the value bucket (`<secret uuid>.<valueId>`); random, never reused. */
      valueId: z.string().regex(/^[0-9a-f]{32}$/),
      /** HMAC-SHA256 under a key derived from the secret key, over the secret, the value id and the value. */
      digest: z.string().regex(/^[0-9a-f]{64}$/),
      /** Which bucket holds it: `memory` for an ephemeral secret (gone with the server, as libvirt's are with the daemon). */
      store: z.enum(['disk', 'memory']),
    }),
  }),
  NameClaimRevoked,
]);
export type SecretEventBody = z.infer<typeof SecretEventBody>;
