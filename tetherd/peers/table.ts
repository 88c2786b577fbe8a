import type { Run } from './wire.js';

/**
 * Who owns each block of the pool. Every entry carries a version, and the rules that keep two nodes
 * from ever both believing they own a block are:
 *  - a version is raised only by the entry's owner (a transfer: the owner names the next owner), or,
 *    for a node retired by a majority vote, by its elected heir (peers.ts);
 *  - merging keeps, per block, the entry with the higher version.
 * So a block changes hands only when its one owner says so, and once it has, the old owner's view
 * already names the new one. Equal versions with different owners cannot arise from these rules; if
 * a misconfiguration (two seeds) makes them, the name that sorts first wins everywhere, and the clash
 * is counted.
 */
export interface Owned { owner: string; version: number }

export class Table {
  readonly owners: string[];
  readonly versions: number[];

  constructor(readonly blocks: number) {
    this.owners = new Array<string>(blocks).fill('');
    this.versions = new Array<number>(blocks).fill(0);
  }

  get(i: number): Owned { return { owner: this.owners[i], version: this.versions[i] }; }
  isEmpty(): boolean { return this.versions.every((v) => v === 0); }
  ownedBy(node: string): number[] { const out: number[] = []; this.owners.forEach((o, i) => { if (o === node) out.push(i); }); return out; }

  /** The deterministic first split among the agreed members: contiguous shares, in name order. */
  split(members: string[]): void {
    const names = [...new Set(members)].sort();
    if (!names.length) throw new Error('a split needs at least one member');
    for (let i = 0; i < this.blocks; i++) {
      this.owners[i] = names[Math.floor((i * names.length) / this.blocks)];
      this.versions[i] = 1;
    }
  }

  /** The owner gives blocks away: refused (nothing changed) unless `from` owns every one of them. */
  transfer(from: string, to: string, blocks: number[]): boolean {
    if (from === to || !to || blocks.some((i) => !(i >= 0 && i < this.blocks) || this.owners[i] !== from)) return false;
    for (const i of blocks) { this.owners[i] = to; this.versions[i]++; }
    return true;
  }

  /** A retired node's blocks to its elected heir (only after the vote: peers.ts). */
  inherit(dead: string, heir: string): number[] {
    const got = this.ownedBy(dead);
    for (const i of got) { this.owners[i] = heir; this.versions[i]++; }
    return got;
  }

  /** Merges a peer's table; returns the blocks that changed and how many equal-version clashes it met. */
  merge(runs: Run[]): { changed: number[]; clashes: number } {
    const changed: number[] = [];
    let clashes = 0;
    for (const r of runs) {
      for (let i = r.start; i < r.start + r.count && i < this.blocks; i++) {
        const v = this.versions[i];
        if (r.version > v || (r.version === v && r.owner !== this.owners[i] && r.owner < this.owners[i])) {
          if (r.version === v) clashes++;
          this.owners[i] = r.owner; this.versions[i] = r.version; changed.push(i);
        } else if (r.version === v && r.owner !== this.owners[i]) clashes++;
      }
    }
    return { changed, clashes };
  }

  /** The table as runs of equal (owner, version): a fresh split is one run per member. */
  runs(): Run[] {
    const out: Run[] = [];
    for (let i = 0; i < this.blocks; i++) {
      const last = out[out.length - 1];
      if (last && last.owner === this.owners[i] && last.version === this.versions[i] && last.start + last.count === i) last.count++;
      else out.push({ start: i, count: 1, owner: this.owners[i], version: this.versions[i] });
    }
    return out;
  }

  static fromRuns(blocks: number, runs: Run[]): Table {
    const t = new Table(blocks);
    t.merge(runs);
    return t;
  }

  equals(o: Table): boolean {
    return this.blocks === o.blocks && this.owners.every((x, i) => x === o.owners[i] && this.versions[i] === o.versions[i]);
  }
}
