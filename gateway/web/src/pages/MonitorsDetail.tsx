// /monitors/{monitor_id}: a monitor's state, settings, runs and state changes, kept current by
// WatchMonitor (runs appear as they start and finish, state changes as they happen).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { Card, Empty, ErrorNotice, Loading } from "../components/ui";
import type { ListMonitorRunsResponse, Monitor, MonitorEvent, MonitorRun, MonitorRunAgent, WatchMonitorResponse } from "../gen/hostcheck/v1/monitors_pb";
import { describeError, isNotFound, monitors } from "../lib/api";
import { useApiKey } from "../lib/apikey";
import { formatAgo, formatLocation, formatMs, formatTime, toDate } from "../lib/format";
import { formatUptime, mergeRun, useNow, useWatchMonitor, webhookHost, type MonitorWatch, type MonitorWatchPhase } from "../lib/monitors";
import { AgentSparklines, MonitorStateBadge, NeedsApiKey } from "./MonitorsParts";

const RUNS_SHOWN = 50;

const PHASE_TEXT: Record<MonitorWatchPhase, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  not_found: "",
  deleted: "deleted",
  error: "disconnected",
};

const button =
  "rounded-md border px-3 py-1.5 text-sm font-medium shadow-sm focus:outline-none focus-visible:ring-2 focus-visible:ring-sky-400 disabled:opacity-60";

export function MonitorPage() {
  const apiKey = useApiKey();
  const { monitorId = "" } = useParams();
  if (!apiKey) return <NeedsApiKey />;
  return <MonitorView monitorId={monitorId} apiKey={apiKey} />;
}

function MonitorView({ monitorId, apiKey }: { monitorId: string; apiKey: string }) {
  const queryClient = useQueryClient();
  const runsKey = ["monitors", "runs-page", apiKey, monitorId];
  const eventsKey = ["monitors", "events", apiKey, monitorId];

  const onEvent = (ev: WatchMonitorResponse) => {
    if (ev.event === "run" && ev.run) {
      const run = ev.run;
      queryClient.setQueryData<ListMonitorRunsResponse>(runsKey, (old) =>
        old && { ...old, runs: mergeRun(old.runs, run).slice(0, RUNS_SHOWN) },
      );
    }
    if (ev.event === "state" || ev.event === "snapshot") void queryClient.invalidateQueries({ queryKey: eventsKey });
    // A snapshot after a reconnect: runs may have ended while the stream was down.
    if (ev.event === "snapshot") void queryClient.invalidateQueries({ queryKey: runsKey });
  };
  const watch = useWatchMonitor(monitorId, apiKey, onEvent);
  const runs = useQuery({
    queryKey: runsKey,
    queryFn: ({ signal }) => monitors.listMonitorRuns({ monitorId, pageSize: RUNS_SHOWN }, { signal }),
    enabled: watch.phase !== "not_found" && watch.phase !== "deleted",
  });
  const events = useQuery({
    queryKey: eventsKey,
    queryFn: ({ signal }) => monitors.listMonitorEvents({ monitorId, pageSize: 100 }, { signal }),
    enabled: watch.phase !== "not_found" && watch.phase !== "deleted",
    // A notification's delivery is not streamed: while one is pending, look again now and then.
    refetchInterval: (q) => (q.state.data?.events.some((e) => e.notification === "pending") ? 5000 : false),
  });

  // The stream's snapshot is the page's monitor; until it comes (or while the stream is down) a
  // plain read stands in, so the page works without live updates too.
  const read = useQuery({
    queryKey: ["monitors", "read", apiKey, monitorId],
    queryFn: ({ signal }) => monitors.readMonitor({ monitorId }, { signal }),
    enabled: !watch.monitor && watch.phase !== "not_found" && watch.phase !== "deleted",
    retry: (n, err) => !isNotFound(err) && n < 2,
  });
  const monitor = watch.monitor ?? read.data;
  const phase = watch.phase;
  if (phase === "not_found" || (read.isError && isNotFound(read.error))) {
    return (
      <Gone title="Monitor not found">
        There is no monitor <code>{monitorId}</code> for this API key.
      </Gone>
    );
  }
  if (phase === "deleted") {
    return <Gone title="Monitor deleted">The monitor was deleted. Its runs' checks stay until retention removes them.</Gone>;
  }
  if (!monitor) {
    return read.isError ? (
      <ErrorNotice onRetry={() => { void read.refetch(); watch.retry(); }}>Could not load the monitor. {describeError(read.error)}</ErrorNotice>
    ) : (
      <Loading>Loading the monitor…</Loading>
    );
  }

  return (
    <div className="space-y-6">
      <Header monitor={monitor} watch={watch} onChanged={(m) => queryClient.setQueryData(["monitors", "read", apiKey, monitorId], m)} />
      <Settings monitor={monitor} />
      <Card title={`Latency by agent (last ${RUNS_SHOWN} runs)`}>
        {runs.data ? <AgentSparklines runs={runs.data.runs} wide /> : <Loading />}
      </Card>
      <Card title="Runs">
        {runs.isPending ? (
          <Loading>Loading runs…</Loading>
        ) : runs.isError ? (
          <ErrorNotice onRetry={() => void runs.refetch()}>Could not load the runs. {describeError(runs.error)}</ErrorNotice>
        ) : runs.data.runs.length === 0 ? (
          <Empty>No runs yet. {monitor.paused ? "The monitor is paused." : `The first one is due ${formatTime(monitor.nextRunAt)}.`}</Empty>
        ) : (
          <RunsTable runs={runs.data.runs} />
        )}
      </Card>
      <Card title="State changes">
        {events.isPending ? (
          <Loading>Loading state changes…</Loading>
        ) : events.isError ? (
          <ErrorNotice onRetry={() => void events.refetch()}>Could not load the state changes. {describeError(events.error)}</ErrorNotice>
        ) : events.data.events.length === 0 ? (
          <Empty>No state changes yet.</Empty>
        ) : (
          <EventList events={events.data.events} />
        )}
      </Card>
    </div>
  );
}

function Gone({ title, children }: { title: string; children: ReactNode }) {
  return (
    <div className="space-y-3">
      <h1 className="text-xl font-semibold">{title}</h1>
      <ErrorNotice>{children}</ErrorNotice>
      <Link to="/monitors" className="text-sky-700 underline">Back to the monitors</Link>
    </div>
  );
}

function Header({ monitor: m, watch, onChanged }: { monitor: Monitor; watch: MonitorWatch; onChanged: (m: Monitor) => void }) {
  const now = useNow(5000);
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const pause = useMutation({
    mutationFn: (paused: boolean) =>
      monitors.updateMonitor({ monitorId: m.monitorId, monitor: { paused }, updateMask: { paths: ["paused"] } }),
    onSuccess: (updated) => {
      watch.setMonitor(updated);
      onChanged(updated);
      // Pausing and resuming are state changes too (listed with the others).
      void queryClient.invalidateQueries({ queryKey: ["monitors", "events"] });
      void queryClient.invalidateQueries({ queryKey: ["monitors", "list"] });
    },
  });
  const remove = useMutation({
    mutationFn: () => monitors.deleteMonitor({ monitorId: m.monitorId }),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: ["monitors", "list"] });
      navigate("/monitors");
    },
  });
  const phase = watch.phase;
  return (
    <div className="space-y-2">
      <p className="text-sm">
        <Link to="/monitors" className="text-sky-700 underline-offset-2 hover:underline">Monitors</Link>
      </p>
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="break-all text-xl font-semibold" data-testid="monitor-name">{m.name}</h1>
        <MonitorStateBadge state={m.state} testId="monitor-state" />
        <span className="text-sm text-slate-500" title={formatTime(m.stateSince)} data-testid="state-since">
          since {toDate(m.stateSince) ? `${formatAgo(m.stateSince, now)}` : "—"}
        </span>
        <span className="flex items-center gap-1.5 text-xs text-slate-500" data-testid="watch-phase" data-phase={phase}>
          {phase === "live" && <span className="inline-block h-2 w-2 animate-pulse rounded-full bg-emerald-500" />}
          {PHASE_TEXT[phase]}
        </span>
        <div className="ml-auto flex gap-2">
          <button
            type="button"
            disabled={pause.isPending}
            onClick={() => pause.mutate(!m.paused)}
            className={`${button} border-slate-300 bg-white text-slate-700 hover:bg-slate-50`}
          >
            {m.paused ? "Resume" : "Pause"}
          </button>
          {confirming ? (
            <span className="flex items-center gap-2 text-sm" role="group" aria-label="Confirm delete">
              Delete it and its history?
              <button type="button" disabled={remove.isPending} onClick={() => remove.mutate()} className={`${button} border-rose-600 bg-rose-600 text-white hover:bg-rose-700`}>
                Yes, delete
              </button>
              <button type="button" onClick={() => setConfirming(false)} className={`${button} border-slate-300 bg-white text-slate-700 hover:bg-slate-50`}>
                Cancel
              </button>
            </span>
          ) : (
            <button type="button" onClick={() => setConfirming(true)} className={`${button} border-rose-300 bg-white text-rose-700 hover:bg-rose-50`}>
              Delete
            </button>
          )}
        </div>
      </div>
      <p className="text-sm text-slate-600">
        <span className="break-all">{m.check?.target}</span> · {m.check?.checks.join(", ")} · every {m.intervalS} s ·
        uptime {formatUptime(m.uptime24h)} (24 h), {formatUptime(m.uptime7d)} (7 d)
      </p>
      {pause.isError && <ErrorNotice>Could not {m.paused ? "resume" : "pause"} the monitor. {describeError(pause.error)}</ErrorNotice>}
      {remove.isError && <ErrorNotice>Could not delete the monitor. {describeError(remove.error)}</ErrorNotice>}
      {(phase === "reconnecting" || phase === "error") && (
        <ErrorNotice onRetry={phase === "error" ? watch.retry : undefined}>
          Live updates interrupted: {watch.error}. {phase === "reconnecting" ? "Reconnecting…" : ""}
        </ErrorNotice>
      )}
    </div>
  );
}

function agentsText(m: Monitor): string {
  const a = m.check?.agents;
  if (!a) return "any online agents, up to 10";
  const parts = [
    a.magic.length ? `from ${a.magic.join(", ")}` : "",
    a.continents.length ? `continents ${a.continents.join(", ")}` : "",
    a.countries.length ? `countries ${a.countries.join(", ")}` : "",
    a.regions.length ? `regions ${a.regions.join(", ")}` : "",
    a.asns.length ? `ASNs ${a.asns.join(", ")}` : "",
    Object.keys(a.labels).length ? `labels ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(", ")}` : "",
    Object.keys(a.excludeLabels).length ? `not ${Object.entries(a.excludeLabels).map(([k, v]) => `${k}=${v}`).join(", ")}` : "",
    a.sameAs ? `same as check ${a.sameAs}` : "",
  ].filter(Boolean);
  return `${parts.length ? parts.join("; ") : "any online agents"}, up to ${a.limit || 10}`;
}

function Settings({ monitor: m }: { monitor: Monitor }) {
  const alert = m.alert;
  const facts: [string, ReactNode][] = [
    ["Interval", `${m.intervalS} s`],
    ["Timeout", m.check?.timeoutMs ? formatMs(m.check.timeoutMs) : "default"],
    ["Quorum", `${alert?.quorum || 1} agent${(alert?.quorum || 1) === 1 ? "" : "s"} failing the same run`],
    ["For runs", `${alert?.forRuns || 1} consecutive run${(alert?.forRuns || 1) === 1 ? "" : "s"} before down`],
    ["Webhook", alert?.webhookUrl ? <span title="Only the host is shown">{webhookHost(alert.webhookUrl)}</span> : "none"],
    ["Agents", agentsText(m)],
    ["Status page", m.statusSlug ? <Link to={`/status/${m.statusSlug}`} className="text-sky-700 underline">/status/{m.statusSlug}</Link> : "not shown"],
    ["Next run", m.paused ? "paused" : formatTime(m.nextRunAt)],
    ["Runs", `${m.runsTotal}${m.failingRuns ? ` (${m.failingRuns} failing in a row)` : ""}`],
    ["Created", formatTime(m.createdAt)],
  ];
  return (
    <Card title="Settings">
      <dl className="grid grid-cols-1 gap-x-6 gap-y-2 text-sm sm:grid-cols-2" data-testid="monitor-settings">
        {facts.map(([k, v]) => (
          <div key={k} className="flex gap-2">
            <dt className="w-28 shrink-0 text-slate-500">{k}</dt>
            <dd className="min-w-0 break-words">{v}</dd>
          </div>
        ))}
      </dl>
    </Card>
  );
}

function RunsTable({ runs }: { runs: MonitorRun[] }) {
  return (
    <div className="-mx-4 overflow-x-auto sm:mx-0">
      <table className="min-w-full text-left text-sm" aria-label="Runs">
        <thead className="border-b border-slate-200 text-xs uppercase text-slate-500">
          <tr>
            <th className="px-4 py-2 sm:px-2">Run</th>
            <th className="px-2 py-2">Due</th>
            <th className="px-2 py-2">Verdict</th>
            <th className="px-2 py-2">Agents failing</th>
            <th className="px-2 py-2">State after</th>
            <th className="px-2 py-2">Check</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.seq} className="border-b border-slate-100 align-top last:border-0" data-run={r.seq} data-verdict={r.verdict}>
              <td className="px-4 py-2 tabular-nums sm:px-2">#{r.seq}</td>
              <td className="px-2 py-2 text-slate-500">{formatTime(r.scheduledAt)}</td>
              <td className="px-2 py-2">
                <MonitorStateBadge state={r.verdict} />
                {r.reason && <div className="mt-1 max-w-xs text-xs text-slate-500">{r.reason}</div>}
              </td>
              <td className="px-2 py-2 tabular-nums" title={failingTitle(r.agents)}>
                {r.verdict === "running" ? "…" : `${r.agentsFailing}/${r.agentsTotal}`}
              </td>
              <td className="px-2 py-2">{r.state ? <MonitorStateBadge state={r.state} /> : "—"}</td>
              <td className="px-2 py-2">
                {toDate(r.startedAt) ? (
                  <Link to={`/results/${r.checkId}`} className="text-sky-700 underline-offset-2 hover:underline">results</Link>
                ) : (
                  <span className="text-slate-400">not started</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function failingTitle(agents: MonitorRunAgent[]): string | undefined {
  const failing = agents.filter((a) => !a.success);
  return failing.length ? failing.map((a) => `${a.agentName}: ${a.errorCode || "failed"}`).join("\n") : undefined;
}

function Notification({ e }: { e: MonitorEvent }) {
  switch (e.notification) {
    case "none":
    case "":
      return <span className="text-slate-500">no notification</span>;
    case "delivered":
      return <span className="text-emerald-700">webhook delivered {formatTime(e.deliveredAt)}{e.deliveryAttempts > 1 ? ` (after ${e.deliveryAttempts} attempts)` : ""}</span>;
    case "pending":
      return (
        <span className="text-amber-700">
          webhook pending{e.deliveryAttempts ? `, ${e.deliveryAttempts} attempt${e.deliveryAttempts === 1 ? "" : "s"}` : ""}
          {e.lastDeliveryError && <>: {e.lastDeliveryError}</>}
        </span>
      );
    default:
      return <span className="text-slate-500">{e.notification}</span>;
  }
}

function AgentError({ a }: { a: MonitorRunAgent }) {
  return (
    <li>
      <span className="font-medium">{a.agentName || a.agentId}</span>
      <span className="text-slate-500"> ({formatLocation({ city: a.city, country: a.country })})</span>
      {": "}
      <code className="text-rose-700">{a.errorCode || "failed"}</code>
      {a.error && <span className="text-slate-600"> {a.error}</span>}
    </li>
  );
}

function EventList({ events }: { events: MonitorEvent[] }) {
  return (
    <ol className="space-y-3" aria-label="State changes">
      {events.map((e) => (
        <li key={e.eventId} className="rounded-md border border-slate-200 p-3 text-sm" data-event-id={e.eventId} data-to={e.toState}>
          <div className="flex flex-wrap items-center gap-2">
            <MonitorStateBadge state={e.fromState} />
            <span aria-label="to">→</span>
            <MonitorStateBadge state={e.toState} />
            <span className="text-slate-500">{formatTime(e.at)}</span>
            <span className="text-slate-500">· {e.runSeq ? `run #${e.runSeq}` : "edit, pause or resume"}</span>
            {e.runSeq > 0 && e.checkId && (
              <Link to={`/results/${e.checkId}`} className="text-sky-700 underline-offset-2 hover:underline">results</Link>
            )}
            <span className="ml-auto text-xs" data-testid="notification" data-notification={e.notification}>
              <Notification e={e} />
            </span>
          </div>
          {e.failingAgents.length > 0 && (
            <ul className="mt-2 list-inside list-disc space-y-0.5 text-xs">
              {e.failingAgents.map((a) => (
                <AgentError key={a.agentId} a={a} />
              ))}
            </ul>
          )}
        </li>
      ))}
    </ol>
  );
}
