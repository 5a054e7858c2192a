// /status/{slug}: a public, read-only status page of the monitors an owner chose to show (no API
// key needed; only ReadStatusPage's public fields). Refreshed every 10 s.
import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { ErrorNotice, Loading } from "../components/ui";
import type { PublicMonitor } from "../gen/hostcheck/v1/monitors_pb";
import { describeError, isNotFound, monitors } from "../lib/api";
import { formatAgo, formatTime, toDate } from "../lib/format";
import { formatUptime, useNow } from "../lib/monitors";
import { MonitorStateBadge } from "./MonitorsParts";

const REFRESH_MS = 10_000;

/** One line for the whole page: all up, or how many are in which state. */
function overall(list: PublicMonitor[]): { text: string; style: string } {
  const count = (state: string) => list.filter((m) => m.state === state).length;
  if (list.length && count("up") === list.length) return { text: "All systems up", style: "bg-emerald-600" };
  const order = ["down", "degraded", "unknown", "pending", "paused", "up"];
  const text = order.filter((s) => count(s)).map((s) => `${count(s)} ${s}`).join(", ");
  const style = count("down") ? "bg-rose-600" : count("degraded") ? "bg-amber-500" : "bg-slate-600";
  return { text: text || "No monitors", style };
}

export function StatusPage() {
  const { slug = "" } = useParams();
  const now = useNow(5000);
  const query = useQuery({
    queryKey: ["status", slug],
    queryFn: ({ signal }) => monitors.readStatusPage({ slug }, { signal }),
    refetchInterval: REFRESH_MS,
    retry: (n, err) => !isNotFound(err) && n < 1,
  });
  const list = query.data?.monitors ?? [];
  const summary = overall(list);
  return (
    <div className="min-h-screen bg-slate-50">
      <main className="mx-auto max-w-3xl space-y-6 px-4 py-10">
        <h1 className="text-2xl font-semibold" data-testid="status-slug">{slug}</h1>
        {query.isPending ? (
          <Loading>Loading the status…</Loading>
        ) : query.isError && !query.data ? (
          isNotFound(query.error) ? (
            <ErrorNotice>There is no status page <code>{slug}</code>.</ErrorNotice>
          ) : (
            <ErrorNotice onRetry={() => void query.refetch()}>Could not load the status. {describeError(query.error)}</ErrorNotice>
          )
        ) : (
          <>
            <p className={`rounded-md px-4 py-3 text-lg font-medium text-white ${summary.style}`} data-testid="status-overall">
              {summary.text}
            </p>
            <ul className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white shadow-sm" aria-label="Monitors">
              {list.map((m, i) => (
                <li key={`${i}-${m.name}`} className="flex flex-wrap items-center gap-x-4 gap-y-1 px-4 py-3" data-monitor={m.name} data-state={m.state}>
                  <div className="min-w-0 flex-1">
                    <p className="truncate font-medium">{m.name}</p>
                    <p className="text-xs text-slate-500">
                      {m.checkTypes.join(", ")} every {m.intervalS} s · last run{" "}
                      <span title={formatTime(m.lastRunAt)}>{toDate(m.lastRunAt) ? formatAgo(m.lastRunAt, now) : "never"}</span>
                    </p>
                  </div>
                  <div className="text-right text-xs text-slate-600 tabular-nums">
                    <div data-testid="uptime-24h">{formatUptime(m.uptime24h)} <span className="text-slate-400">24 h</span></div>
                    <div data-testid="uptime-7d">{formatUptime(m.uptime7d)} <span className="text-slate-400">7 d</span></div>
                  </div>
                  <div className="w-24 text-right" title={`since ${formatTime(m.stateSince)}`}>
                    <MonitorStateBadge state={m.state} testId="monitor-state" />
                  </div>
                </li>
              ))}
            </ul>
            {query.isError && <p className="text-xs text-rose-700">Refresh failed: {describeError(query.error)}. Showing the last status.</p>}
            <p className="text-xs text-slate-500">
              Refreshed every {REFRESH_MS / 1000} s
              {query.dataUpdatedAt ? `, last at ${new Date(query.dataUpdatedAt).toLocaleTimeString()}` : ""}. Checked from many
              places by <Link to="/" className="underline">Host Checker</Link>.
            </p>
          </>
        )}
      </main>
    </div>
  );
}
