import { describe, expect, it } from 'vitest';
import { RequestBatch } from './request-batch.ts';

describe('RequestBatch', () => {
  it('sends what is asked in one turn as one batch, answers each in order, and a later turn as another', async () => {
    const sent: number[][] = [];
    const b = new RequestBatch<number, string>(async (reqs) => {
      sent.push(reqs);
      return reqs.map((r) => `r${r}`);
    });
    const first = await Promise.all([1, 2, 3].map((n) => b.ask(n)));
    const second = await b.ask(4);
    expect(first).toEqual(['r1', 'r2', 'r3']);
    expect(second).toBe('r4');
    expect(sent).toEqual([[1, 2, 3], [4]]);
  });

  it('splits at its maximum, and a failed send fails each request of that batch only', async () => {
    const b = new RequestBatch<number, number>(async (reqs) => {
      if (reqs.includes(3)) throw new Error('lost');
      return reqs;
    }, 2);
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => b.ask(n)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected']);
  });

  it('refuses answers that do not match the requests one for one', async () => {
    const b = new RequestBatch<number, number>(async () => [1]);
    await expect(Promise.all([b.ask(1), b.ask(2)])).rejects.toThrow(/1 answers to 2 requests/);
  });
});
