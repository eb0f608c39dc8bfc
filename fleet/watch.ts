import type { VirtplaneClient } from '../client/index.ts';

/**
 * When lost hosts' guests started elsewhere, from the lifecycle feed as an operator reads it (STARTED
 * events, stamped when received here), from the moment the watch starts.
 */
export class RestartWatch {
  private readonly started = new Map<string, Array<{ hostId: string; at: number }>>();
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;

  constructor(client: VirtplaneClient) {
    this.done = (async () => {
      for await (const e of client.lifecycle({ from: 'new', signal: this.abort.signal })) {
        if (e.event !== 'STARTED') continue;
        const list = this.started.get(e.domainId) ?? [];
        list.push({ hostId: e.hostId, at: Date.now() });
        this.started.set(e.domainId, list);
      }
    })().catch(() => undefined);
  }

  /** When the domain was first seen started on a host other than `from`. */
  restartedAt(domainId: string, from: string): { hostId: string; at: number } | undefined {
    return this.started.get(domainId)?.find((s) => s.hostId !== from);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}
