import { z } from 'zod';
import { Uuid } from '../ids.ts';

/**
 * vol-upload and vol-download: a volume file's bytes streamed between a client and the host agent
 * that owns the pool, by request and reply on the host's own subjects. The bytes never enter the
 * event log. A session is opened, carries numbered chunks (each answered, so a sender keeps only a
 * few unanswered: the flow control), and is finished by comparing the sha256 both ends computed.
 * A session nobody speaks on for a while is released, so a client killed mid-transfer frees the volume.
 */
export const volStreamSubjects = {
  open: (hostId: string) => `volstream.${hostId}.open`,
  /** One chunk of an upload, from the client. */
  data: (hostId: string) => `volstream.${hostId}.data`,
  /** One chunk of a download, asked for by the client. */
  read: (hostId: string) => `volstream.${hostId}.read`,
  finish: (hostId: string) => `volstream.${hostId}.finish`,
  abort: (hostId: string) => `volstream.${hostId}.abort`,
  /** Everything a host's agent answers. */
  all: (hostId: string) => `volstream.${hostId}.>`,
} as const;

/** Chunks unanswered at once: enough to keep the link busy, few enough that a slow disk holds the sender back. */
export const STREAM_WINDOW = 4;

/** Room left in a message for the JSON around a chunk's base64 text. */
const ENVELOPE_BYTES = 1024;

/** The largest chunk whose message, base64 and all, fits a server's `max_payload`, in whole KiB. */
export const chunkBytesFor = (maxPayload: number): number => Math.max(1024, Math.floor(((maxPayload - ENVELOPE_BYTES) * 3) / 4 / 1024) * 1024);

const SessionId = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/);
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const Bytes = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const VolStreamOpenRequest = z.object({
  direction: z.enum(['upload', 'download']),
  poolId: Uuid,
  volume: z.string().min(1).max(255),
  offset: Bytes.default(0),
  /** How many bytes at most; the rest of the volume (download) or of the sender's file (upload) when absent. */
  length: Bytes.optional(),
});
export type VolStreamOpenRequest = z.infer<typeof VolStreamOpenRequest>;

export const VolStreamOpened = z.object({
  sessionId: SessionId,
  chunkBytes: z.number().int().positive(),
  window: z.number().int().positive(),
  /** The session is released after this long without a message. */
  idleMs: z.number().int().positive(),
  /** Download: the bytes that will be sent. */
  bytes: Bytes.optional(),
});

export const VolStreamData = z.object({
  sessionId: SessionId,
  seq: z.number().int().nonnegative(),
  /** The chunk in base64; or, for a chunk of zeros sent sparsely, `zero` bytes of them. */
  data: z.string().optional(),
  zero: z.number().int().positive().optional(),
});
export type VolStreamData = z.infer<typeof VolStreamData>;

export const VolStreamDataAck = z.object({ seq: z.number().int().nonnegative(), bytes: Bytes });

export const VolStreamRead = z.object({ sessionId: SessionId, seq: z.number().int().nonnegative() });

export const VolStreamChunk = z.object({ seq: z.number().int().nonnegative(), data: z.string() });

/** Upload: the sender's count and checksum, which the host compares with its own. */
export const VolStreamFinish = z.object({ sessionId: SessionId, bytes: Bytes.optional(), sha256: Sha256.optional() });
export type VolStreamFinish = z.infer<typeof VolStreamFinish>;

export const VolStreamFinished = z.object({ bytes: Bytes, sha256: Sha256 });

export const VolStreamAbort = z.object({ sessionId: SessionId });
