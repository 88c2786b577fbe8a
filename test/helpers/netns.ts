import { randomBytes } from 'node:crypto';
import { createNamedNetns, deleteNamedNetns, listNamedNetns } from '../../lib/netns/netns.js';

/** Namespaces a test file creates, all under one random prefix, deleted by exact name. */
export class Namespaces {
  readonly prefix: string;
  private readonly names: string[] = [];

  /** stem: the start of every name (default "tt"), then random hex. */
  constructor(stem = 'tt') { this.prefix = `${stem}${randomBytes(3).toString('hex')}`; }

  add(suffix: string): string {
    const name = `${this.prefix}-${suffix}`;
    const path = createNamedNetns(name);
    this.names.push(name);
    return path;
  }

  remove(suffix: string): void {
    const name = `${this.prefix}-${suffix}`;
    deleteNamedNetns(name);
    this.names.splice(this.names.indexOf(name), 1);
  }

  cleanup(): void {
    for (const n of this.names.splice(0)) deleteNamedNetns(n);
  }

  leftovers(): string[] {
    return listNamedNetns().filter((n) => n.startsWith(`${this.prefix}-`));
  }
}
