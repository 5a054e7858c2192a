import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { Card, Empty, ErrorNotice, Loading, StatusBadge } from "../components/ui";
import { describeError, results } from "../lib/api";
import { useApiKey } from "../lib/apikey";
import { formatTime } from "../lib/format";
import { checkBadge, countsOf, outcomeText } from "../lib/outcome";
import { NewCheckForm } from "./NewCheckForm";

export function Dashboard() {
  return (
    <div className="space-y-6">
      <Card title="New check">
        <NewCheckForm />
      </Card>
      <RecentChecks />
    </div>
  );
}

function RecentChecks() {
  // The list is the caller's own: a key's checks, or this IP's anonymous ones (see lib/apikey.ts).
  const apiKey = useApiKey();
  const query = useQuery({
    queryKey: ["checks", "recent", apiKey],
    queryFn: ({ signal }) => results.listChecks({ pageSize: 20 }, { signal }),
    // No list stream exists; a slow refresh keeps statuses current.
    refetchInterval: 5000,
  });
  const checks = query.data?.checks ?? [];
  return (
    <Card title="Recent checks">
      {query.isPending ? (
        <Loading>Loading recent checks…</Loading>
      ) : query.isError ? (
        <ErrorNotice onRetry={() => void query.refetch()}>Could not load recent checks. {describeError(query.error)}</ErrorNotice>
      ) : checks.length === 0 ? (
        <Empty>No checks yet. Run one above and it will be listed here.</Empty>
      ) : (
        <div className="-mx-4 overflow-x-auto sm:mx-0">
          <table className="min-w-full text-left text-sm" aria-label="Recent checks">
            <thead className="border-b border-slate-200 text-xs uppercase text-slate-500">
              <tr>
                <th className="px-4 py-2 sm:px-2">Target</th>
                <th className="px-2 py-2">Types</th>
                <th className="px-2 py-2">Status</th>
                <th className="px-2 py-2">Tasks</th>
                <th className="hidden px-2 py-2 sm:table-cell">Created</th>
              </tr>
            </thead>
            <tbody>
              {checks.map((c) => {
                const counts = countsOf(c);
                const badge = checkBadge(c, counts);
                return (
                <tr key={c.checkId} className="border-b border-slate-100 last:border-0" data-check-id={c.checkId} data-outcome={badge.status}>
                  <td className="max-w-[16rem] truncate px-4 py-2 sm:px-2">
                    <Link to={`/results/${c.checkId}`} className="font-medium text-sky-700 underline-offset-2 hover:underline">
                      {c.target}
                    </Link>
                  </td>
                  <td className="px-2 py-2">{c.checkTypes.join(", ")}</td>
                  <td className="px-2 py-2">
                    <StatusBadge status={badge.status} label={badge.label} />
                  </td>
                  <td className="px-2 py-2 tabular-nums" title={outcomeText(counts)}>
                    {c.tasksDone}/{c.tasksTotal}
                    {c.tasksDone > 0 && <span className="ml-2 text-xs text-slate-500">{counts.succeeded} of {counts.total} succeeded</span>}
                  </td>
                  <td className="hidden px-2 py-2 text-slate-500 sm:table-cell">{formatTime(c.createdAt)}</td>
                </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}
