import type { Logger } from '../../lib/log.js';

type Step = () => Promise<void> | void;

/**
 * What an ADD created so far, undone in reverse when a later step fails: every failure after IPAM
 * allocated must leave nothing behind. A step that fails while undoing is logged and the rest still run.
 */
export class Rollback {
  private steps: Step[] = [];

  push(step: Step): void { this.steps.push(step); }

  /** The ADD succeeded: keep everything. */
  commit(): void { this.steps = []; }

  async run(log: Logger): Promise<void> {
    const steps = this.steps.reverse();
    this.steps = [];
    for (const step of steps) {
      try { await step(); } catch (u) { log.error('rollback step failed', { error: (u as Error).message }); }
    }
  }
}
