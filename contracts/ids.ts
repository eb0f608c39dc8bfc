import { z } from 'zod';
import { randomUUID } from 'node:crypto';

/** Identifiers travel inside NATS subjects, so they must be single tokens of safe characters. */
export const SubjectToken = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, 'must contain only letters, digits, "_" and "-"');

export const HostId = SubjectToken;
export type HostId = z.infer<typeof HostId>;

export const DomainId = z.uuid();
export type DomainId = z.infer<typeof DomainId>;

export const CommandId = z.string().min(8).max(128).regex(/^[A-Za-z0-9_.:-]+$/);
export type CommandId = z.infer<typeof CommandId>;

export const newId = (): string => randomUUID();
