// Go-style durations, as kube-proxy's flags and KubeProxyConfiguration write them:
// "1s", "500ms", "1h", "1m30s", "0.5s".
const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (t === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0, matched = 0, m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched === t.length && matched > 0 ? total : undefined;
}
