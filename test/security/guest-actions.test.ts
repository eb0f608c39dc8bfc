import { describe, expect, it } from 'vitest';
import { VirtplaneClient } from '../../client/index.ts';
import { subjects } from '../../contracts/subjects.ts';
import { EventStore } from '../../platform/event-store.ts';
import { useSecuredStack } from '../fixtures/secured.ts';

/**
 * send-key, inject-nmi and screenshot under the generated permissions: an operator does them and
 * gets the picture; an auditor sees in the log who did what, but can neither act nor see the screen.
 */
describe("acting on a guest, and its screen, under least privilege", () => {
  const stack = useSecuredStack({ hosts: ['host-a'], principals: [['alice', 'operator'], ['audrey', 'auditor']], hostId: 'host-a' });

  it('an operator presses keys, sends an NMI and reads the screenshot; an auditor reads who did, and nothing else', async () => {
    const alice = VirtplaneClient.over(await stack.s.as('alice'), { actor: 'alice-laptop' });
    const def = await alice.define({ definition: { name: 'sec-keys', memoryKiB: 65536, vcpus: 1 } });
    await alice.outcome(await alice.start('sec-keys'), 20_000);
    await alice.outcome(await alice.sendKey('sec-keys', { keycodes: [29, 56, 111] }), 20_000);
    await alice.outcome(await alice.injectNmi('sec-keys'), 20_000);
    const shot = await alice.screenshot('sec-keys');
    await alice.outcome(shot, 20_000);
    expect((await alice.screenshotBytes('host-a', shot.taskId!)).subarray(1, 4).toString()).toBe('PNG');
    // A task id is a plain token: no path leaves the host's screenshot directory.
    for (const taskId of ['../../../etc/passwd', 'a/../../tasks.jsonl', '*', 'nosuchtask-0000']) {
      await expect(alice.screenshotBytes('host-a', taskId)).rejects.toMatchObject({ code: taskId === 'nosuchtask-0000' ? 'operation-invalid' : 'invalid-arg' });
    }
    expect(stack.s.violations()).toEqual([]);

    const audrey = VirtplaneClient.over(await stack.s.as('audrey'));
    const commits = await new EventStore(await stack.s.as('audrey')).read(subjects.aggregate('domain', def.domainId));
    const acts = commits.flatMap((c) => c.events).filter((e) => /SendKey|NmiInject|Screenshot/.test(e.type));
    expect(acts.map((e) => [e.type, e.actor])).toEqual([
      ['DomainSendKeyRequested', 'alice'],
      ['DomainNmiInjectRequested', 'alice'],
      ['DomainScreenshotRequested', 'alice'],
    ]);
    // The picture is the host's to give to operators only; nor may an auditor act on the guest.
    await expect(audrey.screenshotBytes('host-a', shot.taskId!)).rejects.toThrow();
    await expect(audrey.sendKey('sec-keys', { keycodes: [30] })).rejects.toThrow();
    // Refused by the server itself, not by the agent's goodwill.
    const refused = stack.s.violations().map((l) => /test-(\w+).*Publish Violation.*Subject "([^"]+)"/.exec(l)?.slice(1));
    expect(refused).toEqual([
      ['audrey', 'hostread.host-a.screenshot'],
      ['audrey', 'cmd.audrey.domain.send-key'],
    ]);
  }, 90_000);
});
