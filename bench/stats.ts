export interface Stats { n: number; median: number; p95: number; p99: number; min: number; max: number }

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { n: s.length, median: at(0.5), p95: at(0.95), p99: at(0.99), min: s[0], max: s[s.length - 1] };
}

export const ms = (x: number) => x.toFixed(2);
