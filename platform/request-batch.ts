/**
 * Requests asked in the same turn of the event loop go out as one: `send` gets them in order and
 * answers each, in the same order. Under load (a host handed a pull batch of tasks) many share one
 * round trip; alone, a request waits only for the turn to end. A failed `send` fails every request of
 * its batch, as each would have failed alone.
 */
export class RequestBatch<Req, Res> {
  private queue: Array<{ req: Req; resolve: (r: Res) => void; reject: (e: unknown) => void }> = [];

  constructor(
    private readonly send: (reqs: Req[]) => Promise<Res[]>,
    private readonly max = 64,
  ) {}

  ask(req: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const all = this.queue;
    this.queue = [];
    for (let i = 0; i < all.length; i += this.max) {
      const batch = all.slice(i, i + this.max);
      this.send(batch.map((b) => b.req)).then(
        (results) => {
          if (results.length !== batch.length) throw new Error(`${results.length} answers to ${batch.length} requests`);
          batch.forEach((b, j) => b.resolve(results[j]!));
        },
      ).catch((e) => batch.forEach((b) => b.reject(e)));
    }
  }
}
