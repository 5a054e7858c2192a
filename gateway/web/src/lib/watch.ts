// useWatchCheck: a check kept current by the WatchCheck server stream (gRPC-Web), no polling.
// The stream opens with a snapshot, so a reconnect after a dropped stream starts clean.
import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useReducer, useState } from "react";
import type { Check, CheckTask } from "../gen/hostcheck/v1/checks_pb";
import type { WatchCheckResponse } from "../gen/hostcheck/v1/results_pb";
import type { TaskProgress } from "../gen/hostcheck/v1/scheduler_pb";
import { describeError, results } from "./api";

export type WatchPhase = "connecting" | "live" | "reconnecting" | "done" | "not_found" | "deleted" | "error";

export type WatchState = {
  check?: Check;
  tasks: CheckTask[];
  // The latest progress of each running task, by task id (a long probe's replies or hops).
  progress: Record<string, TaskProgress>;
  phase: WatchPhase;
  error?: string;
};

type Action =
  | { type: "event"; event: WatchCheckResponse }
  | { type: "phase"; phase: WatchPhase; error?: string }
  | { type: "reset" };

const TERMINAL = new Set(["completed", "failed"]);
const TASK_TERMINAL = new Set(["completed", "failed", "timed_out"]);

function reduce(state: WatchState, action: Action): WatchState {
  switch (action.type) {
    case "reset":
      return { tasks: [], progress: {}, phase: "connecting" };
    case "phase":
      return { ...state, phase: action.phase, error: action.error };
    case "event": {
      const ev = action.event;
      if ((ev.event === "snapshot" || ev.event === "done") && ev.check) {
        return {
          check: ev.check,
          tasks: ev.check.tasks,
          progress: state.progress,
          phase: ev.event === "done" || TERMINAL.has(ev.check.status) ? "done" : "live",
        };
      }
      if (ev.event === "task" && ev.task) {
        const task = ev.task;
        const i = state.tasks.findIndex((t) => t.taskId === task.taskId);
        // A start that arrives after its task's result is stale.
        if (i >= 0 && task.status === "running" && TASK_TERMINAL.has(state.tasks[i].status)) return state;
        const tasks = i < 0 ? [...state.tasks, task] : state.tasks.map((t, j) => (j === i ? task : t));
        const check = state.check && {
          ...state.check,
          status: ev.checkStatus || state.check.status,
          tasksDone: ev.tasksDone || state.check.tasksDone,
          tasksTotal: ev.tasksTotal || state.check.tasksTotal,
        };
        return { ...state, tasks, check, phase: "live", error: undefined };
      }
      if (ev.event === "progress" && ev.progress) {
        const p = ev.progress;
        const task = state.tasks.find((t) => t.taskId === p.taskId);
        if (task && TASK_TERMINAL.has(task.status)) return state;
        return { ...state, progress: { ...state.progress, [p.taskId]: p }, phase: "live", error: undefined };
      }
      if (ev.event === "deleted") {
        return { ...state, phase: "deleted" };
      }
      return state;
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

const MAX_ATTEMPTS = 8;

export function useWatchCheck(checkId: string): WatchState & { retry: () => void } {
  const [state, dispatch] = useReducer(reduce, { tasks: [], progress: {}, phase: "connecting" });
  const [nonce, setNonce] = useState(0);

  useEffect(() => {
    const ctrl = new AbortController();
    const { signal } = ctrl;
    dispatch({ type: "reset" });
    void (async () => {
      let failures = 0;
      while (!signal.aborted) {
        let terminal = false;
        try {
          for await (const event of results.watchCheck({ checkId }, { signal })) {
            failures = 0;
            dispatch({ type: "event", event });
            if (event.event === "done" || event.event === "deleted" || (event.check && TERMINAL.has(event.check.status))) terminal = true;
          }
          if (terminal || signal.aborted) return;
          failures += 1;
          dispatch({ type: "phase", phase: "reconnecting", error: "The live stream ended early" });
        } catch (err) {
          if (signal.aborted) return;
          const code = ConnectError.from(err).code;
          if (code === Code.NotFound || code === Code.InvalidArgument) {
            dispatch({ type: "phase", phase: "not_found", error: describeError(err) });
            return;
          }
          if (terminal) return;
          failures += 1;
          if (failures >= MAX_ATTEMPTS) {
            dispatch({ type: "phase", phase: "error", error: describeError(err) });
            return;
          }
          dispatch({ type: "phase", phase: "reconnecting", error: describeError(err) });
        }
        // The stream ended early (a proxy restart, a network change): reopen it; the snapshot resyncs.
        await sleep(Math.min(250 * 2 ** failures, 8000), signal);
      }
    })();
    return () => ctrl.abort();
  }, [checkId, nonce]);

  return { ...state, retry: () => setNonce((n) => n + 1) };
}
