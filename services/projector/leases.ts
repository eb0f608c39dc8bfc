import type { HostLiveness } from '../../contracts/host/liveness.ts';
import { BUCKETS } from '../../contracts/subjects.ts';
import { isStreamNotFound } from '../../platform/js-retry.ts';
import { readBucket } from '../../platform/kv-mirror.ts';
import type { Logger } from '../../platform/log.ts';
import { decodeJson, type Nats } from '../../platform/nats.ts';

/** Longest a host list waits for the leases before it answers with the last ones read. */
const READ_WITHIN_MS = 2000;

/**
 * The hosts' leases as they stand, read when a host list asks rather than followed: a watch would
 * deliver every renewal of every host to the projector (one server message per host and renewal,
 * 500 a second at 1,000 hosts) for a list asked now and then. One read of the bucket's last entry per
 * key serves the questions that arrive while it runs. A read that fails or does not finish in time
 * answers the last leases read, so an election on the bucket slows a host list but never fails it.
 */
export class LeaseReader {
  private last: ReadonlyMap<string, HostLiveness> = new Map();
  private reading: Promise<ReadonlyMap<string, HostLiveness>> | null = null;

  constructor(
    private readonly n: Nats,
    private readonly log: Logger,
  ) {}

  current(): Promise<ReadonlyMap<string, HostLiveness>> {
    this.reading ??= this.read().finally(() => (this.reading = null));
    return this.reading;
  }

  private async read(): Promise<ReadonlyMap<string, HostLiveness>> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>((r) => (timer = setTimeout(() => r(null), READ_WITHIN_MS)));
    try {
      const entries = await Promise.race([readBucket(this.n, BUCKETS.hostLiveness), late]);
      if (!entries) {
        this.log.warn('leases not read in time; answering with the last ones read');
        return this.last;
      }
      const leases = new Map<string, HostLiveness>();
      for (const e of entries) if (e.value) leases.set(e.key, decodeJson(e.value) as HostLiveness);
      this.last = leases;
      return leases;
    } catch (e) {
      if (isStreamNotFound(e)) {
        // No bucket, no lease: nobody renews, so no host is alive.
        this.last = new Map();
        return this.last;
      }
      this.log.warn('could not read the leases; answering with the last ones read', { error: String(e) });
      return this.last;
    } finally {
      clearTimeout(timer);
    }
  }
}
