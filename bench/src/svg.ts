// Minimal hand-written SVG charts (no dependencies): a line chart with a log y axis and a
// horizontal bar chart.

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf', '#bcbd22'];

export interface Series { name: string; points: { x: number; y: number }[]; dashed?: boolean; color?: string }

export function lineChart(o: { title: string; xLabel: string; yLabel: string; series: Series[]; logY?: boolean; yFormat?: (v: number) => string; note?: string }): string {
  const W = 860, H = 480, L = 80, R = 300, T = 50, B = 60;
  const pw = W - L - R, ph = H - T - B;
  const pts = o.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y) && p.y > 0);
  const xs = [...new Set(pts.map((p) => p.x))].sort((a, b) => a - b);
  const fmt = o.yFormat ?? ((v: number) => String(v));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(o.title)}</text>`);
  if (pts.length === 0) { parts.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text></svg>`); return parts.join('\n'); }
  const xMin = Math.min(...xs), xMax = Math.max(...xs);
  const xPos = (x: number): number => L + (xMax === xMin ? pw / 2 : ((x - xMin) / (xMax - xMin)) * pw);
  let yPos: (y: number) => number;
  const yTicks: number[] = [];
  if (o.logY) {
    const lo = Math.floor(Math.log10(Math.min(...pts.map((p) => p.y))));
    const hi = Math.ceil(Math.log10(Math.max(...pts.map((p) => p.y))));
    const span = Math.max(1, hi - lo);
    yPos = (y) => T + ph - ((Math.log10(y) - lo) / span) * ph;
    for (let d = lo; d <= Math.max(hi, lo + 1); d++) yTicks.push(10 ** d);
  } else {
    const max = Math.max(...pts.map((p) => p.y)) * 1.1;
    yPos = (y) => T + ph - (y / max) * ph;
    for (let i = 0; i <= 5; i++) yTicks.push((max / 5) * i);
  }
  // axes and grid
  parts.push(`<line x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}" stroke="#333"/>`, `<line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}" stroke="#333"/>`);
  for (const v of yTicks) {
    const y = yPos(v);
    parts.push(`<line x1="${L}" y1="${y}" x2="${L + pw}" y2="${y}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${y + 4}" text-anchor="end">${esc(fmt(v))}</text>`);
  }
  for (const x of xs) parts.push(`<line x1="${xPos(x)}" y1="${T + ph}" x2="${xPos(x)}" y2="${T + ph + 5}" stroke="#333"/>`, `<text x="${xPos(x)}" y="${T + ph + 20}" text-anchor="middle">${x.toLocaleString('en')}</text>`);
  parts.push(`<text x="${L + pw / 2}" y="${H - 15}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text x="18" y="${T + ph / 2}" text-anchor="middle" transform="rotate(-90 18 ${T + ph / 2})">${esc(o.yLabel)}</text>`);
  // series
  o.series.forEach((s, i) => {
    const color = s.color ?? COLORS[i % COLORS.length]!;
    const ps = s.points.filter((p) => Number.isFinite(p.y) && p.y > 0).sort((a, b) => a.x - b.x);
    if (ps.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${ps.map((p) => `${xPos(p.x).toFixed(1)},${yPos(p.y).toFixed(1)}`).join(' ')}"/>`);
    for (const p of ps) parts.push(`<circle cx="${xPos(p.x).toFixed(1)}" cy="${yPos(p.y).toFixed(1)}" r="3.5" fill="${color}"><title>${esc(`${s.name}: ${fmt(p.y)} at ${p.x}`)}</title></circle>`);
    const ly = T + 10 + i * 20;
    parts.push(`<line x1="${L + pw + 20}" y1="${ly}" x2="${L + pw + 45}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`, `<text x="${L + pw + 52}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  if (o.note) parts.push(`<text x="${L}" y="${H - 2}" font-size="10" fill="#555">${esc(o.note)}</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

export interface Bar { label: string; value: number; text?: string; group?: string }

export function barChart(o: { title: string; xLabel: string; bars: Bar[]; refs?: { label: string; value: number }[]; note?: string }): string {
  const W = 860, rowH = 24, T = 50, L = 230, R = 170, B = 50;
  const H = T + B + Math.max(1, o.bars.length) * rowH;
  const pw = W - L - R;
  const step = niceStep(Math.max(1, ...o.bars.map((b) => b.value), ...(o.refs ?? []).map((r) => r.value)) / 5);
  const max = step * Math.ceil((Math.max(1, ...o.bars.map((b) => b.value), ...(o.refs ?? []).map((r) => r.value)) * 1.02) / step);
  const x = (v: number): number => L + (v / max) * pw;
  const groups = [...new Set(o.bars.map((b) => b.group ?? ''))];
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(o.title)}</text>`);
  for (let v = 0; v <= max + 1e-9; v += step) {
    parts.push(`<line x1="${x(v)}" y1="${T - 5}" x2="${x(v)}" y2="${H - B}" stroke="#eee"/>`, `<text x="${x(v)}" y="${H - B + 16}" text-anchor="middle">${Math.round(v).toLocaleString('en')}</text>`);
  }
  o.bars.forEach((b, i) => {
    const y = T + i * rowH;
    const color = COLORS[groups.indexOf(b.group ?? '') % COLORS.length]!;
    parts.push(`<text x="${L - 8}" y="${y + rowH / 2 + 4}" text-anchor="end">${esc(b.label)}</text>`);
    parts.push(`<rect x="${L}" y="${y + 3}" width="${Math.max(0, x(b.value) - L).toFixed(1)}" height="${rowH - 6}" fill="${color}"/>`);
    parts.push(`<text x="${x(b.value) + 6}" y="${y + rowH / 2 + 4}">${esc(b.text ?? Math.round(b.value).toLocaleString('en'))}</text>`);
  });
  for (const r of o.refs ?? []) {
    parts.push(`<line x1="${x(r.value)}" y1="${T - 5}" x2="${x(r.value)}" y2="${H - B}" stroke="#000" stroke-dasharray="4 3"/>`, `<text x="${x(r.value)}" y="${T - 8}" text-anchor="middle" font-size="10">${esc(r.label)}</text>`);
  }
  parts.push(`<text x="${L + pw / 2}" y="${H - 15}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  if (o.note) parts.push(`<text x="10" y="${H - 2}" font-size="10" fill="#555">${esc(o.note)}</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
