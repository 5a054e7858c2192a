// /monitors: the API key's monitors (the admin token's: all), their state, uptime and latency.
import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { Card, Empty, ErrorNotice, Loading } from "../components/ui";
import type { Monitor } from "../gen/hostcheck/v1/monitors_pb";
import { describeError, monitors } from "../lib/api";
import { useApiKey } from "../lib/apikey";
import { formatAgo, formatTime, toDate } from "../lib/format";
import { formatUptime, useNow } from "../lib/monitors";
import { AgentSparklines, MonitorStateBadge, NeedsApiKey } from "./MonitorsParts";

/** Runs a sparkline draws. */
const SPARK_RUNS = 30;

const newButton =
  "rounded-md bg-sky-700 px-3 py-1.5 text-sm font-semibold text-white shadow-sm hover:bg-sky-800 focus:outline-none focus-visible:ring-2 focus-visible:ring-sky-400 focus-visible:ring-offset-2";

export function MonitorsPage() {
  const apiKey = useApiKey();
  return (
    <div className="space-y-6">
      <Card
        title="Monitors"
        actions={apiKey ? <Link to="/monitors/new" className={newButton}>New monitor</Link> : undefined}
      >
        {apiKey ? <MonitorList apiKey={apiKey} /> : <NeedsApiKey />}
      </Card>
    </div>
  );
}

function MonitorList({ apiKey }: { apiKey: string }) {
  const now = useNow(5000);
  const query = useQuery({
    queryKey: ["monitors", "list", apiKey],
    queryFn: ({ signal }) => monitors.listMonitors({ pageSize: 200 }, { signal }),
    // No list stream exists; a slow refresh keeps states current.
    refetchInterval: 5000,
  });
  if (query.isPending) return <Loading>Loading monitors…</Loading>;
  if (query.isError) {
    return <ErrorNotice onRetry={() => void query.refetch()}>Could not load the monitors. {describeError(query.error)}</ErrorNotice>;
  }
  const list = query.data.monitors;
  if (list.length === 0) {
    return (
      <Empty>
        No monitors yet. A monitor runs a check every interval from many agents and alerts when a quorum of them fails.{" "}
        <Link to="/monitors/new" className="text-sky-700 underline">Create one</Link>.
      </Empty>
    );
  }
  return (
    <div className="-mx-4 overflow-x-auto sm:mx-0">
      <table className="min-w-full text-left text-sm" aria-label="Monitors">
        <thead className="border-b border-slate-200 text-xs uppercase text-slate-500">
          <tr>
            <th className="px-4 py-2 sm:px-2">Name</th>
            <th className="px-2 py-2">Target</th>
            <th className="px-2 py-2">State</th>
            <th className="px-2 py-2">Since</th>
            <th className="px-2 py-2 text-right" title="Share of runs that were up">24 h</th>
            <th className="px-2 py-2 text-right" title="Share of runs that were up">7 d</th>
            <th className="px-2 py-2">Latency by agent (last {SPARK_RUNS} runs)</th>
            <th className="px-2 py-2">Last run</th>
          </tr>
        </thead>
        <tbody>
          {list.map((m) => (
            <MonitorRow key={m.monitorId} monitor={m} apiKey={apiKey} now={now} />
          ))}
        </tbody>
      </table>
      {query.data.nextPageToken && <p className="mt-2 text-xs text-slate-500">Showing the newest {list.length} monitors.</p>}
    </div>
  );
}

function MonitorRow({ monitor: m, apiKey, now }: { monitor: Monitor; apiKey: string; now: number }) {
  const runs = useQuery({
    // Keyed by the last evaluated run too: a new run refetches at once.
    queryKey: ["monitors", "runs", apiKey, m.monitorId, SPARK_RUNS, m.lastRun?.seq ?? 0],
    queryFn: ({ signal }) => monitors.listMonitorRuns({ monitorId: m.monitorId, pageSize: SPARK_RUNS }, { signal }),
    placeholderData: (previous) => previous,
    staleTime: 60_000,
  });
  const lastRunAt = m.lastRun?.finishedAt ?? m.lastRun?.startedAt ?? m.lastRun?.scheduledAt;
  return (
    <tr className="border-b border-slate-100 align-top last:border-0" data-monitor-id={m.monitorId} data-state={m.state}>
      <td className="max-w-[14rem] truncate px-4 py-2 sm:px-2">
        <Link to={`/monitors/${m.monitorId}`} className="font-medium text-sky-700 underline-offset-2 hover:underline">
          {m.name}
        </Link>
      </td>
      <td className="max-w-[14rem] px-2 py-2">
        <div className="truncate" title={m.check?.target}>{m.check?.target}</div>
        <div className="text-xs text-slate-500">{m.check?.checks.join(", ")} · every {m.intervalS} s</div>
      </td>
      <td className="px-2 py-2">
        <MonitorStateBadge state={m.state} testId="monitor-state" />
      </td>
      <td className="px-2 py-2 text-slate-500" title={formatTime(m.stateSince)}>
        {toDate(m.stateSince) ? formatAgo(m.stateSince, now) : "—"}
      </td>
      <td className="px-2 py-2 text-right tabular-nums" data-testid="uptime-24h">{formatUptime(m.uptime24h)}</td>
      <td className="px-2 py-2 text-right tabular-nums" data-testid="uptime-7d">{formatUptime(m.uptime7d)}</td>
      <td className="px-2 py-2">
        {runs.data ? (
          <AgentSparklines runs={runs.data.runs} />
        ) : runs.isError ? (
          <span className="text-xs text-rose-700">{describeError(runs.error)}</span>
        ) : (
          <span className="text-xs text-slate-400">…</span>
        )}
      </td>
      <td className="px-2 py-2 text-slate-500" title={formatTime(lastRunAt)}>
        {toDate(lastRunAt) ? formatAgo(lastRunAt, now) : "never"}
      </td>
    </tr>
  );
}
