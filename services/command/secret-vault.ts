import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KV } from '@nats-io/kv';
import { virtError } from '../../contracts/errors.ts';
import { BUCKETS } from '../../contracts/subjects.ts';
import { ConfigError } from '../../platform/config.ts';
import type { Nats } from '../../platform/nats.ts';

/**
 * Where secret values live: AES-256-GCM ciphertext in a bucket only the command service may read or
 * write, under a key that never leaves the command service's host (a file, 0600). The event log
 * holds only the value's id and a keyed digest (contracts/secret/events.ts), so neither the log, the
 * views, an admin reading the bucket's stream, nor a stolen server disk gives a value away.
 *
 * Every ciphertext is bound to its secret and value id (the GCM associated data): one cannot be
 * moved onto another secret, nor an older value put back in place of the one the log names.
 */

const KEY_BYTES = 32;
const FORMAT = 1;

export type ValueStore = 'disk' | 'memory';

interface Sealed {
  v: number;
  /** Which key sealed it: a command service given another key says so instead of failing to decrypt. */
  kid: string;
  iv: string;
  tag: string;
  ct: string;
}

/**
 * Reads the key file, or creates it (0600, 32 random bytes in base64) when it does not exist yet.
 * Every command-service replica must be given the same file (VIRTPLANE_SECRET_KEY_FILE).
 */
export const loadSecretKey = (path: string): Buffer => {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`invalid configuration: secretKeyFile (VIRTPLANE_SECRET_KEY_FILE): cannot read ${path}: ${(e as Error).message}`);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${randomBytes(KEY_BYTES).toString('base64')}\n`);
      closeSync(fd);
    } catch (err) {
      // Another replica on this machine made it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    text = readFileSync(path, 'utf8');
  }
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    // Like ssh with a private key: a key others could read may have leaked, so it is refused rather than used.
    throw new ConfigError(`invalid configuration: secretKeyFile (VIRTPLANE_SECRET_KEY_FILE): ${path} is open to others (mode ${mode.toString(8)}); make it 0600`);
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new ConfigError(`invalid configuration: secretKeyFile (VIRTPLANE_SECRET_KEY_FILE): ${path} must hold ${KEY_BYTES} bytes in base64`);
  return key;
};

const derive = (key: Buffer, label: string): Buffer => Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `virtplane secret ${label} v1`, KEY_BYTES));

export class SecretVault {
  private readonly encKey: Buffer;
  private readonly macKey: Buffer;
  private readonly kid: string;

  constructor(
    key: Buffer,
    private readonly disk: KV | null,
    private readonly memory: KV | null,
  ) {
    this.encKey = derive(key, 'encryption');
    this.macKey = derive(key, 'digest');
    this.kid = derive(key, 'key id').subarray(0, 8).toString('hex');
  }

  static async open(n: Nats, key: Buffer): Promise<SecretVault> {
    return new SecretVault(key, await n.kvm.open(BUCKETS.secretValues), await n.kvm.open(BUCKETS.secretValuesMemory));
  }

  newValueId = (): string => randomBytes(16).toString('hex');

  private bucket = (store: ValueStore): KV => {
    const kv = store === 'memory' ? this.memory : this.disk;
    if (!kv) throw new Error('this vault has no bucket');
    return kv;
  };
  private aad = (secretId: string, valueId: string) => Buffer.from(`virtplane-secret:${secretId}:${valueId}`);

  /** What the log records of a value: nothing can be learnt from it without the key. */
  digest(secretId: string, valueId: string, value: Buffer): string {
    return createHmac('sha256', this.macKey).update(this.aad(secretId, valueId)).update(value).digest('hex');
  }

  /** Encrypts and stores a value; returns its digest for the log. */
  async put(secretId: string, valueId: string, value: Buffer, store: ValueStore): Promise<string> {
    await this.bucket(store).put(`${secretId}.${valueId}`, this.seal(secretId, valueId, value));
    return this.digest(secretId, valueId, value);
  }

  /** The sealed form of a value, bound to its secret and value id. */
  seal(secretId: string, valueId: string, value: Buffer): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.encKey, iv);
    cipher.setAAD(this.aad(secretId, valueId));
    const ct = Buffer.concat([cipher.update(value), cipher.final()]);
    const sealed: Sealed = { v: FORMAT, kid: this.kid, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ct: ct.toString('base64') };
    return JSON.stringify(sealed);
  }

  /** The value the log names, or null when its ciphertext is gone (an ephemeral value after a server restart). */
  async get(secretId: string, valueId: string, store: ValueStore, digest: string): Promise<Buffer | null> {
    const entry = await this.bucket(store).get(`${secretId}.${valueId}`);
    if (!entry || entry.operation !== 'PUT') return null;
    return this.open(secretId, valueId, new TextDecoder().decode(entry.value), digest);
  }

  /** Opens a sealed value and checks it is the one the log recorded. */
  open(secretId: string, valueId: string, text: string, digest: string): Buffer {
    let sealed: Sealed;
    try {
      sealed = JSON.parse(text) as Sealed;
    } catch {
      throw virtError('internal-error', `internal error: the stored value of secret '${secretId}' is damaged`);
    }
    if (sealed.v !== FORMAT || sealed.kid !== this.kid) {
      throw virtError('internal-error', `internal error: the value of secret '${secretId}' was stored under another secret key (${sealed.kid}); this command service holds ${this.kid}`);
    }
    let value: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.encKey, Buffer.from(sealed.iv, 'base64'));
      decipher.setAAD(this.aad(secretId, valueId));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      value = Buffer.concat([decipher.update(Buffer.from(sealed.ct, 'base64')), decipher.final()]);
    } catch {
      throw virtError('internal-error', `internal error: the stored value of secret '${secretId}' does not authenticate`);
    }
    const expected = Buffer.from(digest, 'hex');
    const actual = Buffer.from(this.digest(secretId, valueId, value), 'hex');
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
      throw virtError('internal-error', `internal error: the stored value of secret '${secretId}' is not the one the log recorded`);
    }
    return value;
  }

  /** Removes a value's ciphertext, history and all; removing one that is gone already is fine. */
  async purge(secretId: string, valueId: string, store: ValueStore): Promise<void> {
    await this.bucket(store).purge(`${secretId}.${valueId}`);
  }
}
