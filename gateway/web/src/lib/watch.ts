// useWatchCheck: a check kept current by the WatchCheck server stream (gRPC-Web), no polling.
// The stream opens with a snapshot, so a reconnect after a dropped stream starts clean.
import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useReducer, useState } from "react";
import type { Check, CheckTask } from "../gen/hostcheck/v1/checks_pb";
import type { WatchCheckResponse } from "../gen/hostcheck/v1/results_pb";
import { describeError, results } from "./api";

export type WatchPhase = "connecting" | "live" | "reconnecting" | "done" | "not_found" | "error";

export type WatchState = {
  check?: Check;
  tasks: CheckTask[];
  phase: WatchPhase;
  error?: string;
};

type Action =
  | { type: "event"; event: WatchCheckResponse }
  | { type: "phase"; phase: WatchPhase; error?: string }
  | { type: "reset" };

const TERMINAL = new Set(["completed", "failed"]);

function reduce(state: WatchState, action: Action): WatchState {
  switch (action.type) {
    case "reset":
      return { tasks: [], phase: "connecting" };
    case "phase":
      return { ...state, phase: action.phase, error: action.error };
    case "event": {
      const ev = action.event;
      if ((ev.event === "snapshot" || ev.event === "done") && ev.check) {
        return {
          check: ev.check,
          tasks: ev.check.tasks,
          phase: ev.event === "done" || TERMINAL.has(ev.check.status) ? "done" : "live",
        };
      }
      if (ev.event === "task" && ev.task) {
        const task = ev.task;
        const i = state.tasks.findIndex((t) => t.taskId === task.taskId);
        const tasks = i < 0 ? [...state.tasks, task] : state.tasks.map((t, j) => (j === i ? task : t));
        const check = state.check && {
          ...state.check,
          status: ev.checkStatus || state.check.status,
          tasksDone: ev.tasksDone || state.check.tasksDone,
          tasksTotal: ev.tasksTotal || state.check.tasksTotal,
        };
        return { ...state, tasks, check, phase: "live", error: undefined };
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
  const [state, dispatch] = useReducer(reduce, { tasks: [], phase: "connecting" });
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
            if (event.event === "done" || (event.check && TERMINAL.has(event.check.status))) terminal = true;
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
