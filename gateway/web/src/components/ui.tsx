// Small shared pieces: status badges, notices, spinners.
import type { ReactNode } from "react";

const STATUS_STYLE: Record<string, string> = {
  completed: "bg-emerald-100 text-emerald-800 ring-emerald-600/20",
  online: "bg-emerald-100 text-emerald-800 ring-emerald-600/20",
  success: "bg-emerald-100 text-emerald-800 ring-emerald-600/20",
  in_progress: "bg-sky-100 text-sky-800 ring-sky-600/20",
  pending: "bg-amber-100 text-amber-800 ring-amber-600/20",
  failed: "bg-rose-100 text-rose-800 ring-rose-600/20",
  timed_out: "bg-rose-100 text-rose-800 ring-rose-600/20",
  offline: "bg-slate-200 text-slate-700 ring-slate-500/20",
  revoked: "bg-slate-200 text-slate-700 ring-slate-500/20",
};

export function StatusBadge({ status, label }: { status: string; label?: string }) {
  const style = STATUS_STYLE[status] ?? "bg-slate-100 text-slate-700 ring-slate-500/20";
  return (
    <span
      className={`inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset ${style}`}
      data-status={status}
    >
      {label ?? status.replace("_", " ")}
    </span>
  );
}

export function ErrorNotice({ children, onRetry }: { children: ReactNode; onRetry?: () => void }) {
  return (
    <div role="alert" className="rounded-md border border-rose-200 bg-rose-50 p-3 text-sm text-rose-800">
      {children}
      {onRetry && (
        <button
          type="button"
          onClick={onRetry}
          className="ml-3 rounded border border-rose-300 bg-white px-2 py-0.5 text-rose-800 hover:bg-rose-100 focus:outline-none focus-visible:ring-2 focus-visible:ring-rose-400"
        >
          Try again
        </button>
      )}
    </div>
  );
}

export function Loading({ children = "Loading…" }: { children?: ReactNode }) {
  return (
    <p className="flex items-center gap-2 text-sm text-slate-500" role="status">
      <span className="inline-block h-3 w-3 animate-spin rounded-full border-2 border-slate-300 border-t-slate-600" />
      {children}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="rounded-md border border-dashed border-slate-300 p-4 text-sm text-slate-500">{children}</p>;
}

export function Card({ title, children, actions }: { title: ReactNode; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="rounded-lg border border-slate-200 bg-white p-4 shadow-sm sm:p-5">
      <div className="mb-3 flex flex-wrap items-center justify-between gap-2">
        <h2 className="text-base font-semibold">{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}
