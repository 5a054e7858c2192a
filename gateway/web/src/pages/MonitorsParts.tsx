// Pieces the monitor pages share: the state badge, the per-agent latency sparklines, the notice
// shown without an API key.
import type { MonitorRun } from "../gen/hostcheck/v1/monitors_pb";
import { formatMs } from "../lib/format";
import { agentSeries, sparkCoords, STATE_MEANING, stateStyle, type AgentSeries } from "../lib/monitors";

/** A monitor's state (or a run's verdict) as a coloured badge. */
export function MonitorStateBadge({ state, testId }: { state: string; testId?: string }) {
  return (
    <span
      className={`inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset ${stateStyle(state)}`}
      data-state={state}
      data-testid={testId}
      title={STATE_MEANING[state]}
    >
      {state || "unknown"}
    </span>
  );
}

/** One agent's durations over the last runs: a line, with failed runs as red dots. */
function Sparkline({ series, wide }: { series: AgentSeries; wide?: boolean }) {
  const W = wide ? 240 : 96;
  const H = wide ? 28 : 20;
  const coords = sparkCoords(series.points.map((p) => p.ms), W, H);
  const last = series.points[series.points.length - 1];
  const title = `${series.name}: ${series.points.length} runs, last ${formatMs(last?.ms)}${last && !last.ok ? " (failed)" : ""}`;
  return (
    <div className="flex items-center gap-2 text-xs" data-testid="sparkline" data-agent={series.name} data-points={series.points.length}>
      <span className={`${wide ? "w-48" : "w-20"} truncate text-slate-600`} title={series.name}>{series.name}</span>
      <svg width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={title} className="shrink-0 overflow-visible">
        <title>{title}</title>
        {coords.length > 1 && (
          <polyline points={coords.map(([x, y]) => `${x},${y}`).join(" ")} fill="none" stroke="#0284c7" strokeWidth={1.5} strokeLinejoin="round" />
        )}
        {coords.map(([x, y], i) =>
          !series.points[i].ok || coords.length === 1 ? (
            <circle key={series.points[i].seq} cx={x} cy={y} r={2} fill={series.points[i].ok ? "#0284c7" : "#e11d48"} />
          ) : null,
        )}
      </svg>
      <span className="w-16 tabular-nums text-slate-500">{formatMs(last?.ms)}</span>
    </div>
  );
}

const MAX_AGENTS = 5;

/** A sparkline per agent from the runs given (newest first); the first few agents, then a count
 * (`wide`: every agent, larger, for a monitor's own page). */
export function AgentSparklines({ runs, wide }: { runs: readonly MonitorRun[]; wide?: boolean }) {
  const all = agentSeries(runs);
  const shown = wide ? all : all.slice(0, MAX_AGENTS);
  if (all.length === 0) return <span className="text-xs text-slate-400">no runs yet</span>;
  return (
    <div className="space-y-0.5">
      {shown.map((s) => (
        <Sparkline key={s.agentId} series={s} wide={wide} />
      ))}
      {all.length > shown.length && <p className="text-xs text-slate-500">and {all.length - shown.length} more agents</p>}
    </div>
  );
}

/** Monitors belong to an API key: without one there is nothing to list. */
export function NeedsApiKey() {
  return (
    <div role="alert" className="rounded-md border border-amber-200 bg-amber-50 p-4 text-sm text-amber-900" data-testid="needs-api-key">
      <p className="font-medium">Monitors need an API key.</p>
      <p className="mt-1">
        Each monitor belongs to the API key that made it. Paste your key with the <strong>Anonymous</strong> button at the
        top right; it stays in this browser. Public status pages (<code>/status/…</code>) need no key.
      </p>
    </div>
  );
}
