import { z } from 'zod';

/**
 * Closed set of error codes, modelled on libvirt's virErrorNumber so operators recognise them.
 * Codes are kebab-case names of the VIR_ERR_* values they mirror.
 */
export const ErrorCode = z.enum([
  'invalid-arg',
  'xml-error',
  'no-domain',
  'no-network',
  'no-storage-pool',
  'no-storage-vol',
  'no-domain-snapshot',
  'no-host',
  'no-secret',
  'invalid-secret',
  'config-unsupported',
  'operation-invalid',
  'operation-failed',
  'operation-unsupported',
  'argument-unsupported',
  'internal-error',
  'conflict',
  'unauthorized',
  'timeout',
  'no-supported-driver',
  /** virsh metadata: no element for that namespace (VIR_ERR_NO_DOMAIN_METADATA). */
  'no-domain-metadata',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const VirtErrorBody = z.object({
  code: ErrorCode,
  message: z.string(),
  details: z.unknown().optional(),
});
export type VirtErrorBody = z.infer<typeof VirtErrorBody>;

/** An expected failure: carries a code from the closed set and crosses the wire as a reply. */
export class VirtError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'VirtError';
  }

  toBody(): VirtErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export const virtError = (code: ErrorCode, message: string, details?: unknown): VirtError =>
  new VirtError(code, message, details);

export const isVirtError = (e: unknown): e is VirtError => e instanceof VirtError;

export const ErrorReply = z.object({ ok: z.literal(false), error: VirtErrorBody });
export type ErrorReply = z.infer<typeof ErrorReply>;

/** Turns zod issues into a structured invalid-arg error naming each offending path. */
export const fromZodError = (err: z.ZodError, code: ErrorCode = 'invalid-arg'): VirtError => {
  const issues = err.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  const summary = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
  return new VirtError(code, `invalid argument: ${summary}`, { issues });
};
