// Plan and usage: the tenant's plan, its limits against what is used, and
// requests and refusals per day over the last 30 days (AnalyticsService,
// for plans with the analytics feature).
import { featureNotAvailable, type DailyUsage, type GetPlanResponse } from "@quarters/sdk";
import { type View } from "./app.js";
import { formatCount, usageChart } from "./chart.js";
import { h } from "./dom.js";
import { describe } from "./errors.js";

/** chartDays is how many days the chart shows, today included. */
export const chartDays = 30;

/** isoDate is t's UTC date as YYYY-MM-DD, as AnalyticsService counts days. */
const isoDate = (t: Date) => t.toISOString().slice(0, 10);

/** usageView shows the plan, limits against usage, and the chart. */
export const usageView: View = async (ctx, root) => {
  const now = new Date();
  const today = isoDate(now);
  const monthStart = `${today.slice(0, 8)}01`;
  const chartStart = isoDate(new Date(now.getTime() - (chartDays - 1) * 86_400_000));
  // One report covers both the chart and this month's count.
  const start = monthStart < chartStart ? monthStart : chartStart;
  const [plan, report] = await Promise.all([
    ctx.client.plans.getPlan({}),
    ctx.client.analytics.getUsage({ startDate: start, endDate: today }).then(
      (r) => ({ ok: true as const, r }),
      (err: unknown) => ({ ok: false as const, err }),
    ),
  ]);
  if (!ctx.alive()) return;

  const monthCalls = report.ok ? report.r.days.filter((d) => d.date >= monthStart).reduce((n, d) => n + Number(d.requests), 0) : undefined;
  const parts: Node[] = [h("h2", {}, "Plan and usage"), planSection(plan, monthCalls)];
  if (report.ok) {
    const days = report.r.days.filter((d) => d.date >= chartStart);
    parts.push(chartSection(days));
    if (report.r.procedures.length > 0) {
      const top = [...report.r.procedures].sort((a, b) => Number(b.requests - a.requests)).slice(0, 10);
      parts.push(
        h("h3", {}, "Busiest procedures"),
        h(
          "table",
          { id: "procedures" },
          h("thead", {}, h("tr", {}, h("th", {}, "Procedure"), h("th", {}, "Requests"), h("th", {}, "Refused"))),
          h("tbody", {}, ...top.map((p) => h("tr", {}, h("td", {}, h("code", {}, p.procedure)), h("td", {}, String(p.requests)), h("td", {}, String(p.rateLimited))))),
        ),
      );
    }
  } else {
    const f = featureNotAvailable(report.err);
    parts.push(
      h("h3", {}, "Requests per day"),
      f
        ? h(
            "p",
            { id: "analytics-unavailable", class: "note" },
            `The ${f.plan} plan does not include analytics. `,
            f.upgradeUrl ? h("a", { href: f.upgradeUrl, rel: "noopener" }, "Upgrade") : null,
          )
        : h("p", { id: "analytics-unavailable", class: "note" }, describe(report.err)),
    );
  }
  root.replaceChildren(...parts);
};

function planSection(plan: GetPlanResponse, monthCalls: number | undefined): HTMLElement {
  const l = plan.limits;
  const u = plan.usage;
  const meter = (id: string, label: string, used: number | undefined, max: bigint | undefined) =>
    h(
      "tr",
      { id, "data-used": used ?? "", "data-limit": max === undefined ? "" : String(max) },
      h("th", {}, label),
      h("td", {}, used === undefined ? "—" : formatCount(used), " of ", max === undefined ? "—" : formatCount(Number(max))),
      h("td", {}, used !== undefined && max !== undefined && max > 0n ? h("meter", { min: "0", max: String(max), value: String(used), high: String(Number(max) * 0.8) }) : null),
    );
  return h(
    "section",
    { id: "plan" },
    h("p", {}, "Plan: ", h("strong", { id: "plan-name" }, plan.plan), plan.features.length > 0 ? ` · features: ${plan.features.join(", ")}` : " · no extra features"),
    h(
      "table",
      { class: "limits" },
      h(
        "tbody",
        {},
        meter("usage-projects", "Projects", u ? Number(u.projects) : undefined, l?.maxProjects),
        meter("usage-members", "Seats (members and pending invitations)", u ? Number(u.members) : undefined, l?.maxMembers),
        meter("usage-calls", "API calls this month", monthCalls, l?.maxApiCallsPerMonth),
      ),
    ),
    h("p", { class: "note" }, `Rate limit: ${l?.requestsPerMinute ?? 0} requests a minute, bursts of ${l?.burst ?? 0}.`),
  );
}

function chartSection(days: DailyUsage[]): HTMLElement {
  const requests = days.reduce((n, d) => n + Number(d.requests), 0);
  const refused = days.reduce((n, d) => n + Number(d.rateLimited), 0);
  return h(
    "section",
    { id: "usage" },
    h("h3", {}, `Requests per day, last ${chartDays} days`),
    h(
      "p",
      { class: "legend" },
      h("span", { class: "swatch requests" }),
      " requests ",
      h("strong", { id: "total-requests" }, String(requests)),
      h("span", { class: "swatch refusals" }),
      " refused (rate limit) ",
      h("strong", { id: "total-refusals" }, String(refused)),
    ),
    usageChart(days),
  );
}
