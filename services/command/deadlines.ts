import type { CommandMeta } from '../../contracts/envelope.ts';
import type { Logger } from '../../platform/log.ts';

/**
 * Records a missed deadline promptly, as the command `expire:<taskId>` (so a replica that fires too
 * records nothing twice). The deciders also treat an expired operation as over on the next command;
 * this only keeps views from showing an operation that can no longer finish.
 */
export class DeadlineTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly log: Logger) {}

  watch(task: { taskId: string; deadline: string; correlationId: string }, expire: (meta: CommandMeta) => Promise<unknown>): void {
    const delay = Math.max(0, Date.parse(task.deadline) - Date.now()) + 250;
    const timer = setTimeout(() => {
      this.timers.delete(task.taskId);
      const meta: CommandMeta = {
        commandId: `expire:${task.taskId}`,
        actor: 'virtplane:deadline',
        correlationId: task.correlationId,
        causationId: task.taskId,
        traceContext: {},
        now: new Date(),
      };
      expire(meta).catch((e) => this.log.warn('could not record a missed deadline', { taskId: task.taskId, error: String(e) }));
    }, Math.min(delay, 2 ** 31 - 1));
    timer.unref();
    this.timers.set(task.taskId, timer);
  }

  clear(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
