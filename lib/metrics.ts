// Metrics for the node agent: counters, gauges and histograms with labels, exposed in the Prometheus
// text format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/). Our own, small:
// prom-client would pull in a dependency tree for what is a few hundred lines of string building.

export type Labels = Readonly<Record<string, string>>;
export type MetricType = 'counter' | 'gauge' | 'histogram';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Latency buckets in seconds, from 1 ms (a fast netlink call) to 10 s (an etcd timeout). */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class MetricError extends Error {
  constructor(msg: string) { super(msg); this.name = 'MetricError'; }
}

/** A sample value as the format writes it: Go's float formatting for the specials, shortest round-trip otherwise. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function labelText(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i])}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Options { help: string; labelNames?: readonly string[] }

abstract class Metric<S> {
  readonly labelNames: readonly string[];
  /** Series by their label values joined with a separator no value can hold unescaped. */
  protected readonly series = new Map<string, { values: string[]; state: S }>();

  constructor(readonly name: string, readonly type: MetricType, readonly help: string, labelNames: readonly string[] = [], reserved: string[] = []) {
    if (!METRIC_NAME.test(name)) throw new MetricError(`invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new MetricError(`${name}: invalid label name ${JSON.stringify(l)}`);
      if (reserved.includes(l)) throw new MetricError(`${name}: label "${l}" is reserved for ${type}s`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new MetricError(`${name}: duplicate label names`);
    this.labelNames = labelNames;
  }

  protected abstract initial(): S;

  protected state(labels: Labels = {}): S {
    const keys = Object.keys(labels);
    const missing = this.labelNames.filter((n) => !(n in labels));
    const unknown = keys.filter((k) => !this.labelNames.includes(k));
    if (missing.length || unknown.length) {
      throw new MetricError(`${this.name}: labels must be exactly {${this.labelNames.join(', ')}}${missing.length ? `; missing ${missing.join(', ')}` : ''}${unknown.length ? `; unknown ${unknown.join(', ')}` : ''}`);
    }
    const values = this.labelNames.map((n) => String(labels[n]));
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (!s) { s = { values, state: this.initial() }; this.series.set(key, s); }
    return s.state;
  }

  /** Forgets one series (a peer removed, a network deleted), so it stops being exposed. */
  remove(labels: Labels = {}): void {
    this.series.delete(this.labelNames.map((n) => String(labels[n])).join('\u0000'));
  }

  reset(): void { this.series.clear(); }

  protected abstract lines(values: string[], s: S): string[];

  expose(): string {
    const out = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    // An unlabelled counter or gauge is 0 before its first change; a labelled one has no series yet.
    if (!this.labelNames.length && !this.series.size) this.state();
    for (const { values, state } of this.series.values()) out.push(...this.lines(values, state));
    return `${out.join('\n')}\n`;
  }
}

export class Counter extends Metric<{ v: number }> {
  constructor(name: string, o: Options) { super(name, 'counter', o.help, o.labelNames); }
  protected initial() { return { v: 0 }; }
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) throw new MetricError(`${this.name}: a counter only goes up (got ${by})`);
    this.state(labels).v += by;
  }
  get(labels?: Labels): number { return this.state(labels).v; }
  protected lines(values: string[], s: { v: number }) { return [`${this.name}${labelText(this.labelNames, values)} ${formatValue(s.v)}`]; }
}

export class Gauge extends Metric<{ v: number }> {
  constructor(name: string, o: Options) { super(name, 'gauge', o.help, o.labelNames); }
  protected initial() { return { v: 0 }; }
  set(labels: Labels | undefined, v: number): void { this.state(labels).v = v; }
  inc(labels?: Labels, by = 1): void { this.state(labels).v += by; }
  dec(labels?: Labels, by = 1): void { this.state(labels).v -= by; }
  get(labels?: Labels): number { return this.state(labels).v; }
  protected lines(values: string[], s: { v: number }) { return [`${this.name}${labelText(this.labelNames, values)} ${formatValue(s.v)}`]; }
}

interface HistogramState { counts: number[]; sum: number; count: number }

export class Histogram extends Metric<HistogramState> {
  readonly buckets: readonly number[];
  constructor(name: string, o: Options & { buckets?: readonly number[] }) {
    super(name, 'histogram', o.help, o.labelNames, ['le']);
    const b = [...(o.buckets ?? LATENCY_BUCKETS)].filter((x) => x !== Infinity);
    if (!b.length || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= b[i - 1]))) throw new MetricError(`${name}: buckets must be finite and strictly increasing`);
    this.buckets = b;
  }
  protected initial() { return { counts: this.buckets.map(() => 0), sum: 0, count: 0 }; }
  observe(labels: Labels | undefined, v: number): void {
    const s = this.state(labels);
    // Buckets are cumulative in the format; stored per bucket and summed when exposed.
    const i = this.buckets.findIndex((b) => v <= b);
    if (i >= 0) s.counts[i]++;
    s.sum += v;
    s.count++;
  }
  /** Times fn and observes its duration in seconds, also when it throws. */
  async time<T>(labels: Labels | undefined, fn: () => Promise<T> | T): Promise<T> {
    const t = performance.now();
    try { return await fn(); } finally { this.observe(labels, (performance.now() - t) / 1000); }
  }
  protected lines(values: string[], s: HistogramState) {
    const out: string[] = [];
    let cum = 0;
    this.buckets.forEach((b, i) => {
      cum += s.counts[i];
      out.push(`${this.name}_bucket${labelText(this.labelNames, values, `le="${formatValue(b)}"`)} ${cum}`);
    });
    out.push(`${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${s.count}`);
    out.push(`${this.name}_sum${labelText(this.labelNames, values)} ${formatValue(s.sum)}`);
    out.push(`${this.name}_count${labelText(this.labelNames, values)} ${s.count}`);
    return out;
  }
}

/** The metrics one process exposes; collectors refresh gauges that are read from elsewhere at scrape time. */
export class Registry {
  private readonly metrics = new Map<string, Metric<unknown>>();
  private readonly collectors: (() => void | Promise<void>)[] = [];

  private add<M extends Metric<any>>(m: M): M {
    if (this.metrics.has(m.name)) throw new MetricError(`metric ${m.name} is already registered`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, o: Options): Counter { return this.add(new Counter(name, o)); }
  gauge(name: string, o: Options): Gauge { return this.add(new Gauge(name, o)); }
  histogram(name: string, o: Options & { buckets?: readonly number[] }): Histogram { return this.add(new Histogram(name, o)); }

  /** fn runs before every exposition (e.g. to count leases in the store); a failing one is counted, not fatal. */
  collect(fn: () => void | Promise<void>): void { this.collectors.push(fn); }

  async expose(): Promise<string> {
    for (const c of this.collectors) {
      try { await c(); } catch { this.scrapeErrors().inc(); }
    }
    return [...this.metrics.values()].map((m) => m.expose()).join('');
  }

  private scrapeErrors(): Counter {
    const name = 'tether_metrics_collector_errors_total';
    return (this.metrics.get(name) as Counter | undefined) ?? this.counter(name, { help: 'Collectors that failed while preparing a scrape.' });
  }
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
