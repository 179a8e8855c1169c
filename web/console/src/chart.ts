// A bar chart of requests and refusals per day, drawn as plain SVG: two
// bars a day on one scale, a few date labels, and a title on every bar
// (the browser shows it on hover) with the exact figures.
import type { DailyUsage } from "@quarters/sdk";
import { s } from "./dom.js";

const width = 720;
const height = 240;
const pad = { top: 16, right: 12, bottom: 28, left: 48 };

/** niceMax rounds up to 1, 2 or 5 times a power of ten, so the axis reads well. */
export function niceMax(v: number): number {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** usageChart draws days (oldest first). */
export function usageChart(days: DailyUsage[]): SVGElement {
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(1, ...days.map((d) => Number(d.requests)), ...days.map((d) => Number(d.rateLimited))));
  const slot = plotW / Math.max(1, days.length);
  const barW = Math.max(1, (slot - 2) / 2);
  const y = (v: number) => pad.top + plotH - (v / max) * plotH;

  const svg = s("svg", {
    id: "usage-chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": "Requests and refusals per day",
    class: "chart",
  });
  // Axis and grid: 0, half and the maximum.
  for (const v of [0, max / 2, max]) {
    svg.append(
      s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "grid" }),
      s("text", { x: pad.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, formatCount(v)),
    );
  }
  days.forEach((d, i) => {
    const requests = Number(d.requests);
    const refused = Number(d.rateLimited);
    const x = pad.left + i * slot + 1;
    const g = s(
      "g",
      { class: "day", "data-date": d.date, "data-requests": requests, "data-refusals": refused },
      s("title", {}, `${d.date}: ${requests} requests, ${refused} refused`),
      s("rect", { x, y: y(requests), width: barW, height: y(0) - y(requests), class: "requests" }),
      s("rect", { x: x + barW, y: y(refused), width: barW, height: y(0) - y(refused), class: "refusals" }),
    );
    svg.append(g);
    // A label on the first day, every seventh (unless too near the
    // last), and the last.
    const last = days.length - 1;
    if (i === 0 || i === last || (i % 7 === 0 && last - i >= 4)) {
      svg.append(s("text", { x: x + barW, y: height - 8, class: "tick", "text-anchor": "middle" }, d.date.slice(5)));
    }
  });
  return svg;
}

/** formatCount writes 1200 as 1.2k, so tick labels stay short. */
export function formatCount(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return String(+v.toFixed(1));
}
