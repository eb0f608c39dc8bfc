import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from './fixtures/stack.ts';
import { bigDomainXml } from './fixtures/big-xml.ts';

/**
 * XML parsing runs on worker threads, not on the command service's request loop: an unrelated
 * command sent after eight large documents is answered before any of them, and all eight are still
 * parsed and stored correctly. With parsing on the loop, the first large define finishes between the
 * later parses, long before the loop gets to the unrelated command.
 */
describe('large XML documents do not hold up other commands', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  }, 60_000);
  afterAll(async () => stack?.stop());

  it('an unrelated command is answered while eight large parses are in flight, and every parse completes correctly', async () => {
    const c = stack.client;
    const docs = Array.from({ length: 8 }, (_, i) => bigDomainXml(`bulky-${i}`, 300 * 1024));
    const order: string[] = [];
    const bulky = docs.map((d, i) => c.define({ xml: d.xml }).then((r) => (order.push(`bulky-${i}`), r)));
    const unrelated = c.define({ definition: { name: 'unrelated', memoryKiB: 65536, vcpus: 1 } }).then((r) => (order.push('unrelated'), r));
    const [small, ...big] = await Promise.all([unrelated, ...bulky]);
    expect(order[0]).toBe('unrelated');
    expect(small.name).toBe('unrelated');

    for (const [i, r] of big.entries()) {
      const view = await c.get(r!.domainId, { minVersion: r!.version });
      expect(view.name).toBe(`bulky-${i}`);
      // The whole inventory survived the trip to the parser thread and back.
      expect(view.definition.metadata?.match(/<app:item /g)).toHaveLength(docs[i]!.items);
    }
  }, 120_000);
});
