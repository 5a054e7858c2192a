// What the monitor pages share: state colours, uptime and sparkline arithmetic, and
// useWatchMonitor, a monitor kept current by the WatchMonitor server stream (gRPC-Web).
import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useRef, useState } from "react";
import type { Monitor, MonitorRun, WatchMonitorResponse } from "../gen/hostcheck/v1/monitors_pb";
import { describeError, monitors } from "./api";

/** A monitor's state as a badge: up green, degraded amber, down red, unknown grey, paused grey-blue. */
const STATE_STYLE: Record<string, string> = {
  up: "bg-emerald-100 text-emerald-800 ring-emerald-600/20",
  degraded: "bg-amber-100 text-amber-800 ring-amber-600/30",
  down: "bg-rose-100 text-rose-800 ring-rose-600/20",
  failing: "bg-rose-100 text-rose-800 ring-rose-600/20",
  unknown: "bg-slate-100 text-slate-600 ring-slate-500/20",
  missed: "bg-slate-100 text-slate-600 ring-slate-500/20",
  paused: "bg-slate-200 text-sky-900 ring-sky-800/20",
  pending: "bg-sky-50 text-sky-700 ring-sky-600/20",
  running: "bg-sky-100 text-sky-800 ring-sky-600/20",
};

export function stateStyle(state: string): string {
  return STATE_STYLE[state] ?? STATE_STYLE.unknown;
}

/** What each state means, for a badge's title. */
export const STATE_MEANING: Record<string, string> = {
  up: "No agent failed the last run",
  degraded: "Some agents fail, fewer than the quorum (or not for enough runs yet)",
  down: "At least the quorum of agents failed for enough consecutive runs",
  unknown: "No agent could run the last run",
  paused: "Paused: no runs until resumed",
  pending: "No run evaluated yet",
  failing: "At least the quorum of agents failed this run",
  running: "Still running",
  missed: "Claimed by a scheduler that stopped before starting it",
};

/** The time now, re-read every `everyMs` (for "3 min ago" texts). */
export function useNow(everyMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

/** 0.99871 -> "99.87%"; unset (no runs in the window) -> "—". */
export function formatUptime(fraction: number | undefined): string {
  if (fraction === undefined || !Number.isFinite(fraction)) return "—";
  const pct = fraction * 100;
  return `${pct === 100 || pct === 0 ? pct.toFixed(0) : pct.toFixed(2)}%`;
}

/** The host a webhook goes to (its path may hold a token, so only the host is shown). */
export function webhookHost(url: string): string {
  if (!url) return "";
  try {
    return new URL(url).host;
  } catch {
    return "(invalid URL)";
  }
}

export type SparkPoint = { seq: number; ms: number; ok: boolean };
export type AgentSeries = { agentId: string; name: string; points: SparkPoint[] };

/** Each agent's durations over the runs given (newest first, as ListMonitorRuns returns them),
 * oldest first; runs still going or that never started have no agents and add no point. */
export function agentSeries(runs: readonly MonitorRun[]): AgentSeries[] {
  const byAgent = new Map<string, AgentSeries>();
  for (const run of [...runs].sort((a, b) => a.seq - b.seq)) {
    for (const a of run.agents) {
      let series = byAgent.get(a.agentId);
      if (!series) {
        series = { agentId: a.agentId, name: a.agentName || a.agentId.slice(0, 8), points: [] };
        byAgent.set(a.agentId, series);
      }
      series.points.push({ seq: run.seq, ms: a.durationMs, ok: a.success });
    }
  }
  return [...byAgent.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** SVG coordinates of a sparkline of `values` in a `width` x `height` box (2 px padding). */
export function sparkCoords(values: readonly number[], width: number, height: number): [number, number][] {
  if (values.length === 0) return [];
  const max = Math.max(...values);
  const min = Math.min(...values);
  const span = max - min;
  const step = values.length > 1 ? (width - 4) / (values.length - 1) : 0;
  // A flat series (or one point) runs through the middle.
  const y = (v: number) => (span ? height - 2 - ((v - min) / span) * (height - 4) : height / 2);
  return values.map((v, i) => [+(2 + i * step).toFixed(1), +y(v).toFixed(1)]);
}

/** Upserts a run into a newest-first list by seq (a run arrives when it starts and when it ends). */
export function mergeRun(runs: readonly MonitorRun[], run: MonitorRun): MonitorRun[] {
  const i = runs.findIndex((r) => r.seq === run.seq);
  const next = i < 0 ? [run, ...runs] : runs.map((r, j) => (j === i ? run : r));
  return next.sort((a, b) => b.seq - a.seq);
}

export type MonitorWatchPhase = "connecting" | "live" | "reconnecting" | "not_found" | "deleted" | "error";

export type MonitorWatch = {
  monitor?: Monitor;
  phase: MonitorWatchPhase;
  error?: string;
  retry: () => void;
  /** The page changed the monitor itself (pause, resume): show it before the stream says so. */
  setMonitor: (m: Monitor) => void;
};

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

const MAX_ATTEMPTS = 8;
// Answers that another attempt cannot change.
const FINAL = new Set([Code.NotFound, Code.InvalidArgument, Code.Unauthenticated, Code.PermissionDenied]);

/** A monitor kept current by WatchMonitor: the snapshot, then each state change; `onEvent` also
 * sees the runs as they start and finish. A dropped stream is reopened (its snapshot resyncs). */
export function useWatchMonitor(monitorId: string, apiKey: string, onEvent?: (ev: WatchMonitorResponse) => void): MonitorWatch {
  const [monitor, setMonitor] = useState<Monitor>();
  const [phase, setPhase] = useState<MonitorWatchPhase>("connecting");
  const [error, setError] = useState<string>();
  const [nonce, setNonce] = useState(0);
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  });

  useEffect(() => {
    const ctrl = new AbortController();
    const { signal } = ctrl;
    setMonitor(undefined);
    setPhase("connecting");
    setError(undefined);
    void (async () => {
      let failures = 0;
      while (!signal.aborted) {
        let received = false;
        let why: string;
        try {
          for await (const ev of monitors.watchMonitor({ monitorId }, { signal })) {
            received = true;
            failures = 0;
            if (ev.monitor && (ev.event === "snapshot" || ev.event === "state")) setMonitor(ev.monitor);
            if (ev.event === "deleted") {
              setPhase("deleted");
              handler.current?.(ev);
              return;
            }
            setPhase("live");
            setError(undefined);
            handler.current?.(ev);
          }
          if (signal.aborted) return;
          why = "The live stream ended early";
        } catch (err) {
          if (signal.aborted) return;
          const code = ConnectError.from(err).code;
          if (code === Code.NotFound || code === Code.InvalidArgument) {
            setPhase("not_found");
            setError(describeError(err));
            return;
          }
          if (FINAL.has(code)) {
            setPhase("error");
            setError(describeError(err));
            return;
          }
          why = describeError(err);
        }
        failures += 1;
        if (failures >= MAX_ATTEMPTS) {
          setPhase("error");
          setError(why);
          return;
        }
        // A live stream that ends once (a quiet monitor meets the proxy's idle timeout) is reopened
        // without fuss; its snapshot resyncs. Only repeated failures are shown.
        const quiet = received && failures === 1;
        if (!quiet) {
          setPhase("reconnecting");
          setError(why);
        }
        await sleep(quiet ? 100 : Math.min(250 * 2 ** failures, 8000), signal);
      }
    })();
    return () => ctrl.abort();
  }, [monitorId, apiKey, nonce]);

  return { monitor, phase, error, retry: () => setNonce((n) => n + 1), setMonitor };
}
