/** A grouped bar chart as a standalone SVG file: one bar per series in each group, one panel per metric. */

export interface Panel {
  title: string;
  /** Unit shown after the axis values, e.g. "req/s", "ms". */
  unit: string;
  groups: Array<{ label: string; values: number[] }>;
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#7f7f7f', '#9467bd', '#8c564b'];
const WIDTH = 960;
const PANEL_HEIGHT = 300;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 50 };

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** A "nice" axis maximum: 1, 2 or 5 times a power of ten, at or above `max`. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function fmtTick(n: number): string {
  return n >= 10_000 ? `${n / 1000}k` : String(Number(n.toPrecision(3)));
}

function panel(p: Panel, series: string[], top: number): string {
  const x0 = MARGIN.left;
  const y0 = top + MARGIN.top;
  const w = WIDTH - MARGIN.left - MARGIN.right;
  const h = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const max = niceMax(Math.max(...p.groups.flatMap((g) => g.values.filter(Number.isFinite))));
  const out: string[] = [
    `<text x="${x0}" y="${top + 22}" font-size="15" font-weight="bold">${esc(p.title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    const y = y0 + h - (h * i) / 5;
    out.push(
      `<line x1="${x0}" x2="${x0 + w}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${x0 - 6}" y="${y + 4}" font-size="11" text-anchor="end">${fmtTick(v)}</text>`,
    );
  }
  out.push(
    `<text x="14" y="${y0 + h / 2}" font-size="12" transform="rotate(-90 14 ${y0 + h / 2})" text-anchor="middle">${esc(p.unit)}</text>`,
  );
  const groupW = w / p.groups.length;
  const barW = (groupW * 0.8) / series.length;
  p.groups.forEach((g, gi) => {
    const gx = x0 + gi * groupW + groupW * 0.1;
    g.values.forEach((v, si) => {
      if (!Number.isFinite(v)) return;
      const bh = (h * v) / max;
      const x = gx + si * barW;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${(y0 + h - bh).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${g.label}, ${series[si]}: ${fmtTick(v)} ${p.unit}`)}</title></rect>`,
      );
    });
    out.push(
      `<text x="${(gx + groupW * 0.4).toFixed(1)}" y="${y0 + h + 18}" font-size="12" text-anchor="middle">${esc(g.label)}</text>`,
    );
  });
  out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y0 + h}" y2="${y0 + h}" stroke="#333"/>`);
  return out.join('\n');
}

const LEGEND = { fontSize: 13, swatch: 20, gap: 16, rowHeight: 22 };

/**
 * The legend: each entry as wide as its text (estimated at 0.6 em a character, on the wide
 * side for sans-serif), entries wrapped onto a new row when the next would pass the right edge.
 */
function legend(series: string[]): { svg: string; height: number } {
  const out: string[] = [];
  let x = MARGIN.left;
  let row = 0;
  series.forEach((s, i) => {
    const w = LEGEND.swatch + s.length * LEGEND.fontSize * 0.6;
    if (x > MARGIN.left && x + w > WIDTH - MARGIN.right) {
      x = MARGIN.left;
      row++;
    }
    const y = 10 + row * LEGEND.rowHeight;
    out.push(
      `<rect x="${x.toFixed(0)}" y="${y}" width="14" height="14" fill="${COLORS[i % COLORS.length]}"/><text x="${(x + LEGEND.swatch).toFixed(0)}" y="${y + 12}" font-size="${LEGEND.fontSize}">${esc(s)}</text>`,
    );
    x += w + LEGEND.gap;
  });
  return { svg: out.join('\n'), height: 8 + (row + 1) * LEGEND.rowHeight };
}

/** The whole chart: a legend of the series, then the panels one under the other. */
export function groupedBarChart(series: string[], panels: Panel[]): string {
  const { svg: legendSvg, height: legendH } = legend(series);
  const height = legendH + panels.length * PANEL_HEIGHT;
  const body = panels.map((p, i) => panel(p, series, legendH + i * PANEL_HEIGHT)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
${legendSvg}
${body}
</svg>
`;
}
