// How a check's probes did, for its badge and its "2 of 3 probes succeeded" line. A check is
// `completed` once any probe reported, even a failing one: its badge is coloured by the outcome,
// so a check whose probes all failed is never green.
import type { Check, CheckTask } from "../gen/hostcheck/v1/checks_pb";

const TERMINAL = new Set(["completed", "failed"]);

export type Counts = { succeeded: number; failed: number; timedOut: number; running: number; total: number };

/** Counts from the tasks when we hold them (the live results page), else the check's own (lists). */
export function countsOf(check: Check, tasks?: CheckTask[]): Counts {
  if (!tasks || tasks.length === 0) {
    return { succeeded: check.tasksSucceeded, failed: check.tasksFailed, timedOut: check.tasksTimedOut,
             running: check.tasksRunning, total: check.tasksTotal };
  }
  const n = (status: string) => tasks.filter((t) => t.status === status).length;
  return { succeeded: n("completed"), failed: n("failed"), timedOut: n("timed_out"), running: n("running"), total: tasks.length };
}

/** "2 of 3 probes succeeded (1 failed)". */
export function outcomeText(c: Counts): string {
  const rest = [[c.failed, "failed"], [c.timedOut, "timed out"], [c.running, "running"]]
    .filter(([n]) => n)
    .map(([n, what]) => `${n} ${what}`);
  return `${c.succeeded} of ${c.total} probe${c.total === 1 ? "" : "s"} succeeded${rest.length ? ` (${rest.join(", ")})` : ""}`;
}

/** The outcome a finished check deserves ("" while it runs): all_succeeded | some_failed | none_succeeded. */
export function outcomeOf(check: Check, c: Counts): string {
  if (!TERMINAL.has(check.status)) return "";
  if (c.total && c.succeeded === c.total) return "all_succeeded";
  return c.succeeded ? "some_failed" : "none_succeeded";
}

/** The check's badge: its status as the label, its colour by the outcome (StatusBadge's styles). */
export function checkBadge(check: Check, c: Counts): { status: string; label: string } {
  const label = check.status.replace("_", " ");
  switch (outcomeOf(check, c)) {
    case "all_succeeded": return { status: "success", label };
    case "some_failed": return { status: "pending", label };
    case "none_succeeded": return { status: "failed", label };
    default: return { status: check.status, label };
  }
}
