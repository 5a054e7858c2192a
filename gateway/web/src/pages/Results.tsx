// /results/{check_id}: a permanent link; rows appear and fill in as WatchCheck reports them.
import { Fragment, useState } from "react";
import { Link, useParams } from "react-router";
import { latencyMeaning, latencyOf, summaryOf } from "../checks";
import { ResultDetails } from "../components/ResultDetails";
import { ResultsMap } from "../components/WorldMap";
import { Card, Empty, ErrorNotice, Loading, StatusBadge } from "../components/ui";
import type { CheckTask } from "../gen/hostcheck/v1/checks_pb";
import type { TaskProgress } from "../gen/hostcheck/v1/scheduler_pb";
import { formatLocation, formatMs, formatTime } from "../lib/format";
import { checkBadge, countsOf, outcomeText } from "../lib/outcome";
import { useWatchCheck, type WatchPhase } from "../lib/watch";

const PHASE_TEXT: Record<WatchPhase, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  done: "finished",
  not_found: "",
  deleted: "deleted",
  error: "disconnected",
};

export function ResultsPage() {
  const { checkId = "" } = useParams();
  const watch = useWatchCheck(checkId);
  const { check, tasks, phase } = watch;

  if (phase === "not_found") {
    return (
      <div className="space-y-3">
        <h1 className="text-xl font-semibold">Check not found</h1>
        <ErrorNotice>There is no check with id <code>{checkId}</code>. It may have been deleted. ({watch.error})</ErrorNotice>
        <Link to="/" className="text-sky-700 underline">Back to the dashboard</Link>
      </div>
    );
  }
  if (phase === "deleted") {
    return (
      <div className="space-y-3">
        <h1 className="text-xl font-semibold">Check deleted</h1>
        <ErrorNotice>The check <code>{checkId}</code> was deleted while you watched it.</ErrorNotice>
        <Link to="/" className="text-sky-700 underline">Back to the dashboard</Link>
      </div>
    );
  }
  if (!check) {
    return phase === "error" || phase === "reconnecting" ? (
      <ErrorNotice onRetry={watch.retry}>Could not load the check. {watch.error}</ErrorNotice>
    ) : (
      <Loading>Loading the check…</Loading>
    );
  }

  const pct = check.tasksTotal ? Math.round((check.tasksDone / check.tasksTotal) * 100) : 0;
  const counts = countsOf(check, tasks);
  const badge = checkBadge(check, counts);
  return (
    <div className="space-y-6">
      <div className="space-y-2">
        <div className="flex flex-wrap items-center gap-3">
          <h1 className="break-all text-xl font-semibold" data-testid="check-target">{check.target}</h1>
          <StatusBadge status={badge.status} label={badge.label} />
          <span className="flex items-center gap-1.5 text-xs text-slate-500" data-testid="watch-phase" data-phase={phase}>
            {phase === "live" && <span className="inline-block h-2 w-2 animate-pulse rounded-full bg-emerald-500" />}
            {PHASE_TEXT[phase]}
          </span>
        </div>
        <p className="text-sm text-slate-600">
          {check.checkTypes.join(", ")} · created {formatTime(check.createdAt)} ·{" "}
          <span data-testid="progress">{check.tasksDone}/{check.tasksTotal} tasks done</span> ·{" "}
          <span data-testid="outcome" data-outcome={badge.status}>{outcomeText(counts)}</span>
        </p>
        <div className="h-1.5 w-full overflow-hidden rounded bg-slate-200" role="progressbar" aria-label="Tasks done" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
          <div className="h-full bg-sky-600 transition-all" style={{ width: `${pct}%` }} />
        </div>
        <p className="text-xs text-slate-500">
          Permanent link: <Link to={`/results/${check.checkId}`} className="break-all text-sky-700 underline">{window.location.origin}/results/{check.checkId}</Link>
        </p>
        {(phase === "reconnecting" || phase === "error") && (
          <ErrorNotice onRetry={phase === "error" ? watch.retry : undefined}>
            Live updates interrupted: {watch.error}. {phase === "reconnecting" ? "Reconnecting…" : ""}
          </ErrorNotice>
        )}
      </div>

      <Card title="Results by agent">
        {tasks.length === 0 ? <Empty>No agents were assigned to this check.</Empty> : <TaskList tasks={tasks} progress={watch.progress} multiType={check.checkTypes.length > 1} />}
      </Card>

      {tasks.length > 0 && (
        <Card title="Where the agents are">
          <ResultsMap tasks={tasks} />
        </Card>
      )}

      <Card title="Latency by agent">
        <LatencyChart tasks={tasks} types={check.checkTypes} />
      </Card>
    </div>
  );
}

/** The latency a person compares across agents (the type's own measure, else the probe's duration). */
function taskLatency(task: CheckTask): number | undefined {
  return task.result && latencyOf(task.checkType, task.result);
}

function taskOutcome(task: CheckTask): { status: string; label: string } {
  if (task.status === "completed" && task.result) {
    return task.result.success ? { status: "success", label: "ok" } : { status: "failed", label: task.result.errorCode || "failed" };
  }
  if (task.status === "running") return { status: "in_progress", label: "running" };
  return { status: task.status, label: task.status.replace("_", " ") };
}

/** One short line about the result: the thing a person looks for first. */
function summary(task: CheckTask, progress?: TaskProgress): string {
  const r = task.result;
  if (!r && task.status === "running") {
    if (!progress?.message) return "running…";
    return progress.total ? `${progress.message} (${progress.done}/${progress.total})` : progress.message;
  }
  if (!r) return task.reason || (task.status === "pending" ? "waiting for the agent…" : "");
  if (!r.success && r.error) return r.error;
  return summaryOf(task.checkType, r);
}

function TaskList({ tasks, progress, multiType }: { tasks: CheckTask[]; progress: Record<string, TaskProgress>; multiType: boolean }) {
  const [open, setOpen] = useState<Record<string, boolean>>({});
  return (
    <div className="-mx-4 overflow-x-auto sm:mx-0">
      <table className="min-w-full text-left text-sm" aria-label="Results by agent">
        <thead className="border-b border-slate-200 text-xs uppercase text-slate-500">
          <tr>
            <th className="px-4 py-2 sm:px-2">Agent</th>
            <th className="hidden px-2 py-2 md:table-cell">Location</th>
            {multiType && <th className="px-2 py-2">Type</th>}
            <th className="px-2 py-2">Status</th>
            <th className="px-2 py-2 text-right">Latency</th>
            <th className="hidden px-2 py-2 lg:table-cell">Result</th>
            <th className="px-2 py-2"><span className="sr-only">Details</span></th>
          </tr>
        </thead>
        <tbody>
          {tasks.map((task) => {
            const outcome = taskOutcome(task);
            const isOpen = !!open[task.taskId];
            const detailsId = `details-${task.taskId}`;
            return (
              <Fragment key={task.taskId}>
                <tr className="border-b border-slate-100" data-testid="task-row" data-task-id={task.taskId} data-agent-id={task.agentId} data-check-type={task.checkType} data-status={task.status}>
                  <td className="px-4 py-2 font-medium sm:px-2">
                    {task.agentName || task.agentId.slice(0, 8)}
                    <div className="text-xs font-normal text-slate-500 md:hidden">{formatLocation(task)}</div>
                  </td>
                  <td className="hidden px-2 py-2 text-slate-600 md:table-cell">{formatLocation(task)}</td>
                  {multiType && <td className="px-2 py-2">{task.checkType}</td>}
                  <td className="px-2 py-2">
                    <StatusBadge status={outcome.status} label={outcome.label} />
                  </td>
                  <td className="px-2 py-2 text-right tabular-nums" data-testid="latency" title={task.result ? `probe took ${formatMs(task.result.durationMs)}` : undefined}>{formatMs(taskLatency(task))}</td>
                  <td className="hidden max-w-xs truncate px-2 py-2 text-slate-600 lg:table-cell" title={summary(task, progress[task.taskId])}>{summary(task, progress[task.taskId])}</td>
                  <td className="px-2 py-2 text-right">
                    <button
                      type="button"
                      aria-expanded={isOpen}
                      aria-controls={detailsId}
                      onClick={() => setOpen((o) => ({ ...o, [task.taskId]: !o[task.taskId] }))}
                      className="rounded border border-slate-300 px-2 py-0.5 text-xs hover:bg-slate-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-sky-400"
                    >
                      {isOpen ? "Hide" : "Details"}
                    </button>
                  </td>
                </tr>
                {isOpen && (
                  <tr id={detailsId} className="border-b border-slate-100 bg-slate-50">
                    <td colSpan={7} className="px-4 py-3 sm:px-3">
                      <p className="mb-2 text-slate-600 lg:hidden">{summary(task, progress[task.taskId])}</p>
                      <ResultDetails task={task} />
                    </td>
                  </tr>
                )}
              </Fragment>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** Horizontal bars per agent, one group per check type (durations of different types don't compare). */
function LatencyChart({ tasks, types }: { tasks: CheckTask[]; types: string[] }) {
  const withResult = tasks.filter((t) => t.result);
  if (!withResult.length) return <Empty>Latency appears here as agents report.</Empty>;
  return (
    <div className="space-y-5" data-testid="latency-chart">
      {types.map((type) => {
        const rows = withResult.filter((t) => t.checkType === type);
        if (!rows.length) return null;
        const max = Math.max(...rows.map((t) => taskLatency(t) ?? 0), 0.001);
        return (
          <figure key={type}>
            <figcaption className="mb-1 text-xs text-slate-500">
              <span className="font-semibold uppercase">{type}</span> · {latencyMeaning(type)}
            </figcaption>
            <ul className="space-y-1.5" aria-label={`${type} latency by agent`}>
              {rows.map((t) => {
                const r = t.result!;
                const ms = taskLatency(t) ?? 0;
                const w = Math.max(0.5, (ms / max) * 100);
                return (
                  <li key={t.taskId} className="grid grid-cols-[7rem_1fr_4.5rem] items-center gap-2 text-xs sm:grid-cols-[10rem_1fr_5rem]">
                    <span className="truncate text-slate-700" title={t.agentName}>{t.agentName || t.agentId.slice(0, 8)}</span>
                    <svg width="100%" height="16" role="img" aria-label={`${formatMs(ms)}${r.success ? "" : ", failed"}`}>
                      <rect height="16" width={`${w}%`} rx="3" className={r.success ? "fill-sky-500" : "fill-rose-400"} />
                    </svg>
                    <span className="text-right tabular-nums text-slate-600">{formatMs(ms)}</span>
                  </li>
                );
              })}
            </ul>
          </figure>
        );
      })}
    </div>
  );
}
