/**
 * Runs work for one key strictly in arrival order while different keys run side by side: the tasks
 * of one domain or pool must not overtake each other, those of different ones need not wait.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run(key: string, work: () => Promise<void>): Promise<void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(work);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Settles once everything queued so far has run. */
  async drain(): Promise<void> {
    await Promise.all(this.tails.values());
  }
}
