// /agents: every agent with its live status. No agents stream exists, so the list refreshes every few seconds.
import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Card, Empty, ErrorNotice, Loading, StatusBadge } from "../components/ui";
import { AgentsMap } from "../components/WorldMap";
import { describeError, registry } from "../lib/api";
import { formatAgo, formatLocation, toDate } from "../lib/format";

const REFRESH_MS = 3000;

function useNow(intervalMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return now;
}

export function AgentsPage() {
  const now = useNow(1000);
  const query = useQuery({
    queryKey: ["agents"],
    queryFn: ({ signal }) => registry.listAgents({}, { signal }),
    refetchInterval: REFRESH_MS,
  });
  const agents = [...(query.data?.agents ?? [])].sort(
    (a, b) => Number(b.status === "online") - Number(a.status === "online") || a.name.localeCompare(b.name),
  );
  const title = query.data ? `Agents (${query.data.online} online of ${query.data.total})` : "Agents";
  return (
    <Card
      title={<span data-testid="agents-title">{title}</span>}
      actions={query.isFetching && !query.isPending ? <span className="text-xs text-slate-400">refreshing…</span> : null}
    >
      {query.isPending ? (
        <Loading>Loading agents…</Loading>
      ) : query.isError && !query.data ? (
        <ErrorNotice onRetry={() => void query.refetch()}>Could not load agents. {describeError(query.error)}</ErrorNotice>
      ) : agents.length === 0 ? (
        <Empty>No agents have registered yet. Start one with <code>hostcheck agent</code>.</Empty>
      ) : (
        <>
          {query.isError && (
            <div className="mb-3">
              <ErrorNotice>Showing the last list: refreshing failed. {describeError(query.error)}</ErrorNotice>
            </div>
          )}
          <div className="mb-4">
            <AgentsMap agents={agents} />
          </div>
          <div className="-mx-4 overflow-x-auto sm:mx-0">
            <table className="min-w-full text-left text-sm" aria-label="Agents">
              <thead className="border-b border-slate-200 text-xs uppercase text-slate-500">
                <tr>
                  <th className="px-4 py-2 sm:px-2">Agent</th>
                  <th className="px-2 py-2">Status</th>
                  <th className="hidden px-2 py-2 sm:table-cell">Location</th>
                  <th className="px-2 py-2">Last heartbeat</th>
                  <th className="px-2 py-2 text-right">In flight</th>
                  <th className="hidden px-2 py-2 md:table-cell">Version</th>
                  <th className="hidden px-2 py-2 lg:table-cell">Checks</th>
                </tr>
              </thead>
              <tbody>
                {agents.map((a) => (
                  <tr key={a.agentId} className="border-b border-slate-100 last:border-0" data-testid="agent-row" data-agent-id={a.agentId} data-status={a.status}>
                    <td className="px-4 py-2 sm:px-2">
                      <div className="font-medium">{a.name}</div>
                      <div className="font-mono text-xs text-slate-400">{a.agentId.slice(0, 8)}</div>
                      <div className="text-xs text-slate-500 sm:hidden">{formatLocation(a)}</div>
                    </td>
                    <td className="px-2 py-2">
                      <StatusBadge status={a.status} />
                    </td>
                    <td className="hidden px-2 py-2 text-slate-600 sm:table-cell">
                      {formatLocation(a)}
                      {Object.keys(a.labels).length > 0 && (
                        <div className="mt-0.5 flex flex-wrap gap-1">
                          {Object.entries(a.labels).map(([k, v]) => (
                            <span key={k} className="rounded bg-slate-100 px-1.5 text-xs text-slate-600">{k}={v}</span>
                          ))}
                        </div>
                      )}
                    </td>
                    <td className="px-2 py-2 text-slate-600" title={toDate(a.lastHeartbeat)?.toLocaleString()}>
                      {formatAgo(a.lastHeartbeat, now)}
                    </td>
                    <td className="px-2 py-2 text-right tabular-nums">{a.tasksInFlight}</td>
                    <td className="hidden px-2 py-2 text-slate-600 md:table-cell">{a.version || "—"}</td>
                    <td className="hidden px-2 py-2 text-xs text-slate-500 lg:table-cell">{a.capabilities.join(", ")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </Card>
  );
}
