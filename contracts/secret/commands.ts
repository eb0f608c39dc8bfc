import { z } from 'zod';
import { CommandHeader } from '../domain/commands.ts';
import { Uuid } from '../ids.ts';
import type { SecretDefinition } from './definition.ts';

/** The largest value a secret may hold: libvirt's remote protocol limit (REMOTE_SECRET_VALUE_MAX). */
export const MAX_SECRET_VALUE_BYTES = 65_536;
/** A secret's XML is a few lines; 64 KiB leaves room for a long description and refuses the rest early. */
export const MAX_SECRET_XML_BYTES = 65_536;

/** virsh addresses secrets by uuid only. */
export const SecretRef = z.string().min(1).max(64);

export const DefineSecretRequest = CommandHeader.extend({ xml: z.string().max(MAX_SECRET_XML_BYTES * 4) });
export type DefineSecretRequest = z.infer<typeof DefineSecretRequest>;

export const SecretOpRequest = CommandHeader.extend({ secret: SecretRef });
export type SecretOpRequest = z.infer<typeof SecretOpRequest>;

export const SetSecretValueRequest = SecretOpRequest.extend({
  /** The value's bytes in base64; its decoded size is checked against MAX_SECRET_VALUE_BYTES. */
  value: z.string().max(Math.ceil(MAX_SECRET_VALUE_BYTES / 3) * 4 + 4),
});
export type SetSecretValueRequest = z.infer<typeof SetSecretValueRequest>;

/** What the decider sees: the definition parsed, the value already encrypted and stored. */
export type SecretCommand =
  | { type: 'define'; definition: SecretDefinition; claimSeq: number }
  | { type: 'undefine' }
  | { type: 'set-value'; valueId: string; digest: string }
  /** A read: decided like a command so its refusals are the decider's, it records nothing. */
  | { type: 'get-value' };

export const SecretCommandAccepted = z.object({
  ok: z.literal(true),
  secretId: Uuid,
  version: z.number().int(),
  commandId: z.string(),
  duplicate: z.boolean().optional(),
});
export type SecretCommandAccepted = z.infer<typeof SecretCommandAccepted>;

export const SecretValueReply = z.object({
  ok: z.literal(true),
  secretId: Uuid,
  /** The value's bytes in base64. */
  value: z.string(),
});
export type SecretValueReply = z.infer<typeof SecretValueReply>;
