// Building blocks of the details panel, shared by the check-type modules (src/checks/).
import type { ReactNode } from "react";

export function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section>
      <h4 className="mb-1 font-semibold text-slate-700">{title}</h4>
      {children}
    </section>
  );
}

/** One label and its value; `data-fact` names the row for tests and styles. */
export function Item({ k, children }: { k: string; children: ReactNode }) {
  return (
    <div className="contents" data-fact={k}>
      <dt className="text-slate-500">{k}</dt>
      <dd className="min-w-0 break-words">{children}</dd>
    </div>
  );
}

/** A label and a value; rows whose value is undefined, null, false or "" are left out. */
export type Fact = readonly [label: string, value: ReactNode];

export function Facts({ facts }: { facts: readonly Fact[] }) {
  const shown = facts.filter(([, v]) => v !== undefined && v !== null && v !== false && v !== "");
  if (!shown.length) return null;
  return (
    <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1">
      {shown.map(([label, value]) => (
        <Item key={label} k={label}>
          {value}
        </Item>
      ))}
    </dl>
  );
}

export type Column<T> = {
  label: string;
  cell: (row: T) => ReactNode;
  /** Left out when false (e.g. a column no row has a value for). */
  show?: boolean;
};

export function Table<T>({ rows, columns, label }: { rows: readonly T[]; columns: readonly Column<T>[]; label: string }) {
  const shown = columns.filter((c) => c.show !== false);
  return (
    <div className="overflow-x-auto">
      <table className="min-w-full text-left text-xs" aria-label={label}>
        <thead className="text-slate-500">
          <tr>
            {shown.map((c) => (
              <th key={c.label} className="py-1 pr-4 font-medium">
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody className="font-mono">
          {rows.map((row, i) => (
            <tr key={i} className="border-t border-slate-100">
              {shown.map((c) => (
                <td key={c.label} className="py-1 pr-4 align-top">
                  {c.cell(row)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Text that may be long (a body, a reply), folded until asked for. */
export function Folded({ title, children }: { title: string; children: ReactNode }) {
  return (
    <details>
      <summary className="cursor-pointer text-slate-600">{title}</summary>
      <div className="mt-2">{children}</div>
    </details>
  );
}

export function Pre({ children }: { children: ReactNode }) {
  return <pre className="max-h-60 overflow-auto whitespace-pre-wrap break-all rounded bg-slate-100 p-2 text-xs">{children}</pre>;
}
