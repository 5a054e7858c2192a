// Details of one result. `data` is a JSON Struct whose keys the probers are still growing,
// so every renderer reads known keys defensively and the raw JSON is always one click away.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { CheckTask } from "../gen/hostcheck/v1/checks_pb";
import { formatMs, formatTime } from "../lib/format";

const isObj = (v: JsonValue | undefined): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (v: JsonValue | undefined): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v: JsonValue | undefined): string | undefined =>
  typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : undefined;

/** A value for people: *_ms as durations, loss fractions as percentages. */
function formatValue(key: string, v: JsonValue | undefined): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number" && key.endsWith("_ms")) return formatMs(v);
  if (typeof v === "number" && /(^|_)loss$/.test(key) && v <= 1) return `${+(v * 100).toFixed(1)}%`;
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (Array.isArray(v)) return v.map((x) => (typeof x === "number" && key.endsWith("_ms") ? formatMs(x) : str(x) ?? "*")).join("  ");
  return str(v) ?? JSON.stringify(v);
}

function first(obj: JsonObject, ...keys: string[]): JsonValue | undefined {
  for (const k of keys) if (obj[k] !== undefined && obj[k] !== null) return obj[k];
  return undefined;
}

export function ResultDetails({ task }: { task: CheckTask }) {
  const result = task.result;
  const data: JsonObject = result?.data ?? {};
  return (
    <div className="space-y-4 text-sm">
      <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1">
        <Item k="Agent">{task.agentName || task.agentId}</Item>
        {task.reason && <Item k="Reason">{task.reason}</Item>}
        {result?.error && <Item k="Error">{result.error}{result.errorCode && ` (${result.errorCode})`}</Item>}
        {result && <Item k="Started">{formatTime(result.startedAt)}</Item>}
        {result?.late && <Item k="Late">arrived after the task timed out</Item>}
      </dl>
      {!result && <p className="text-slate-500">No result yet.</p>}
      {result && task.checkType === "http" && <HttpDetails data={data} />}
      {result && task.checkType === "ping" && <PingDetails data={data} />}
      {result && task.checkType === "dns" && <DnsDetails data={data} />}
      {result && task.checkType === "traceroute" && <TracerouteDetails data={data} />}
      {result && <Scalars data={data} />}
      {result && Object.keys(data).length > 0 && (
        <details>
          <summary className="cursor-pointer text-slate-600">Raw data (JSON)</summary>
          <pre className="mt-2 max-h-80 overflow-auto rounded bg-slate-900 p-3 text-xs text-slate-100">
            {JSON.stringify(data, null, 2)}
          </pre>
        </details>
      )}
    </div>
  );
}

function Item({ k, children }: { k: string; children: React.ReactNode }) {
  return (
    <>
      <dt className="text-slate-500">{k}</dt>
      <dd className="min-w-0 break-words">{children}</dd>
    </>
  );
}

function Section({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <section>
      <h4 className="mb-1 font-semibold text-slate-700">{title}</h4>
      {children}
    </section>
  );
}

// Keys rendered by a dedicated section, so the generic list leaves them out.
const STRUCTURED = new Set([
  "timings", "phases", "tls", "headers", "body", "redirects", "rtts", "rtts_ms", "packets", "answers", "authority",
  "records", "hops",
]);

/** Top-level scalar values (status_code, address, connect_ms, ...) as a definition list. */
function Scalars({ data }: { data: JsonObject }) {
  const rows = Object.entries(data)
    .filter(([k, v]) => !STRUCTURED.has(k) && str(v) !== undefined)
    .sort(([a], [b]) => a.localeCompare(b));
  if (!rows.length) return null;
  return (
    <Section title="Measurements">
      <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1">
        {rows.map(([k, v]) => (
          <Item key={k} k={k}>
            {formatValue(k, v)}
          </Item>
        ))}
      </dl>
    </Section>
  );
}

const PHASES: { key: string; label: string; color: string }[] = [
  { key: "dns", label: "DNS", color: "bg-violet-400" },
  { key: "connect", label: "Connect", color: "bg-amber-400" },
  { key: "tls", label: "TLS", color: "bg-rose-400" },
  { key: "first_byte", label: "Waiting (first byte)", color: "bg-sky-500" },
  { key: "transfer", label: "Transfer", color: "bg-emerald-500" },
  { key: "other", label: "Other", color: "bg-slate-300" },
];

/** Phase durations from `timings`/`phases` ({dns, connect, tls, first_byte, total}, with or without _ms). */
export function httpPhases(data: JsonObject): { phases: { key: string; label: string; color: string; ms: number }[]; total?: number } | null {
  const raw = first(data, "timings", "phases");
  if (!isObj(raw)) return null;
  const get = (k: string) => num(raw[k]) ?? num(raw[`${k}_ms`]);
  const ttfbKeyed = get("first_byte") ?? get("ttfb") ?? get("wait") ?? get("server");
  let values = [get("dns"), get("connect") ?? get("tcp"), get("tls"), ttfbKeyed];
  const total = get("total") ?? num(data.total_ms);
  const present = values.filter((v): v is number => v !== undefined);
  if (!present.length) return null;
  // Some probers report offsets from the start (cumulative) rather than durations: if the
  // values only grow and add up to more than the total, turn them into durations.
  const sum = present.reduce((a, b) => a + b, 0);
  const growing = present.every((v, i) => i === 0 || v >= present[i - 1]);
  if (total !== undefined && growing && sum > total * 1.05 && present[present.length - 1] <= total * 1.01) {
    let prev = 0;
    values = values.map((v) => {
      if (v === undefined) return v;
      const d = Math.max(0, v - prev);
      prev = v;
      return d;
    });
  }
  const used = values.reduce<number>((a, b) => a + (b ?? 0), 0);
  const reported = get("download") ?? get("transfer");
  const transfer = reported ?? (total !== undefined && total > used ? total - used : undefined);
  // Time the prober did not attribute to a phase (its own overhead, redirects, ...).
  const other = reported !== undefined && total !== undefined && total > used + reported ? total - used - reported : undefined;
  const phases = PHASES.map((p, i) => ({ ...p, ms: i < 4 ? values[i] : i === 4 ? transfer : other }))
    .filter((p): p is typeof p & { ms: number } => p.ms !== undefined && p.ms > 0);
  return { phases, total: total ?? used };
}

function PhaseBar({ data }: { data: JsonObject }) {
  const parsed = httpPhases(data);
  if (!parsed || !parsed.phases.length) return null;
  const whole = Math.max(parsed.total ?? 0, parsed.phases.reduce((a, p) => a + p.ms, 0)) || 1;
  return (
    <Section title="Timing">
      <div className="flex h-4 w-full overflow-hidden rounded bg-slate-100" role="img" aria-label="HTTP phases">
        {parsed.phases.map((p) => (
          <div key={p.key} className={p.color} style={{ width: `${(p.ms / whole) * 100}%` }} title={`${p.label}: ${formatMs(p.ms)}`} />
        ))}
      </div>
      <ul className="mt-2 flex flex-wrap gap-x-4 gap-y-1 text-xs text-slate-600">
        {parsed.phases.map((p) => (
          <li key={p.key} className="flex items-center gap-1">
            <span className={`inline-block h-2.5 w-2.5 rounded-sm ${p.color}`} />
            {p.label} {formatMs(p.ms)}
          </li>
        ))}
        {parsed.total !== undefined && <li className="font-medium">Total {formatMs(parsed.total)}</li>}
      </ul>
    </Section>
  );
}

/** Any nested object as key/value rows; arrays joined, nested objects one level deep. */
function KeyValues({ obj }: { obj: JsonObject }) {
  return (
    <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1">
      {Object.entries(obj).map(([k, v]) => (
        <Item key={k} k={k}>
          {Array.isArray(v) ? v.map((x) => str(x) ?? JSON.stringify(x)).join(", ") : isObj(v) ? (
            <span className="font-mono text-xs">{Object.entries(v).map(([a, b]) => `${a}=${str(b) ?? JSON.stringify(b)}`).join(", ")}</span>
          ) : (
            str(v) ?? "—"
          )}
        </Item>
      ))}
    </dl>
  );
}

function HttpDetails({ data }: { data: JsonObject }) {
  const tls = data.tls;
  const cert = isObj(tls) ? first(tls, "certificate", "cert", "peer_certificate") : undefined;
  const tlsRest = isObj(tls) ? Object.fromEntries(Object.entries(tls).filter(([k]) => !["certificate", "cert", "peer_certificate"].includes(k))) : undefined;
  const redirects = Array.isArray(data.redirects) ? data.redirects.filter(isObj) : [];
  const headers = isObj(data.headers) ? data.headers : undefined;
  return (
    <>
      <PhaseBar data={data} />
      {tlsRest && Object.keys(tlsRest).length > 0 && (
        <Section title="TLS">
          <KeyValues obj={tlsRest} />
        </Section>
      )}
      {isObj(cert) && (
        <Section title="TLS certificate">
          <KeyValues obj={cert} />
        </Section>
      )}
      {redirects.length > 0 && (
        <Section title="Redirects">
          <ol className="list-inside list-decimal space-y-0.5">
            {redirects.map((r, i) => (
              <li key={i} className="break-all">
                {str(r.status_code)} {str(r.url)} {r.location ? `→ ${str(r.location)}` : ""}
              </li>
            ))}
          </ol>
        </Section>
      )}
      {typeof data.body === "string" && data.body && (
        <details>
          <summary className="cursor-pointer text-slate-600">Response body{data.body_truncated === true ? " (truncated)" : ""}</summary>
          <pre className="mt-2 max-h-60 overflow-auto whitespace-pre-wrap break-all rounded bg-slate-100 p-2 text-xs">{data.body}</pre>
        </details>
      )}
      {headers && (
        <details>
          <summary className="cursor-pointer text-slate-600">Response headers</summary>
          <div className="mt-2 font-mono text-xs">
            <KeyValues obj={headers} />
          </div>
        </details>
      )}
    </>
  );
}

function PingDetails({ data }: { data: JsonObject }) {
  // Per packet (`packets`: [{seq, rtt_ms}], lost ones with no rtt) when reported, else the replies' RTTs.
  const packets = Array.isArray(data.packets) ? data.packets.filter(isObj) : [];
  const replies = first(data, "rtts_ms", "rtts");
  const rtts = packets.length
    ? packets.map((p) => num(first(p, "rtt_ms", "rtt")))
    : (Array.isArray(replies) ? replies : []).map((v) => num(v));
  const max = Math.max(1, ...rtts.filter((v): v is number => v !== undefined));
  const loss = num(first(data, "packet_loss", "loss"));
  return (
    <Section title="Round trips">
      {loss !== undefined && (
        <p className="mb-1">Packet loss: {loss <= 1 ? `${(loss * 100).toFixed(0)}%` : `${loss}%`}</p>
      )}
      {rtts.length > 0 ? (
        <ol className="space-y-1">
          {rtts.map((v, i) => (
            <li key={i} className="flex items-center gap-2">
              <span className="w-6 text-right text-xs text-slate-500">{i + 1}</span>
              <span className="h-2 rounded bg-sky-500" style={{ width: `${v === undefined ? 0 : Math.max(2, (v / max) * 60)}%` }} />
              <span className="tabular-nums">{v === undefined ? "lost" : formatMs(v)}</span>
            </li>
          ))}
        </ol>
      ) : (
        <p className="text-slate-500">No round trips reported.</p>
      )}
    </Section>
  );
}

function Table({ rows, columns }: { rows: JsonObject[]; columns: string[] }) {
  return (
    <div className="overflow-x-auto">
      <table className="min-w-full text-left text-xs">
        <thead className="text-slate-500">
          <tr>{columns.map((c) => <th key={c} className="py-1 pr-4 font-medium">{c}</th>)}</tr>
        </thead>
        <tbody className="font-mono">
          {rows.map((r, i) => (
            <tr key={i} className="border-t border-slate-100">
              {columns.map((c) => {
                const v = r[c];
                return (
                  <td key={c} className="py-1 pr-4 align-top">
                    {v === undefined ? "" : formatValue(c, v)}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function columnsOf(rows: JsonObject[], preferred: string[]): string[] {
  const seen = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  return [...preferred.filter((k) => seen.has(k)), ...[...seen].filter((k) => !preferred.includes(k))];
}

function DnsRecords({ title, records }: { title: string; records: JsonValue | undefined }) {
  if (!Array.isArray(records)) return null;
  if (!records.length) return <Section title={title}><p className="text-slate-500">None.</p></Section>;
  const rows = records.map((a) => (isObj(a) ? a : { value: a }));
  return (
    <Section title={title}>
      <Table rows={rows} columns={columnsOf(rows, ["name", "type", "ttl", "value", "data", "host", "priority"])} />
    </Section>
  );
}

function DnsDetails({ data }: { data: JsonObject }) {
  const authority = data.authority;
  return (
    <>
      <DnsRecords title="Answer" records={first(data, "answers", "records")} />
      {Array.isArray(authority) && authority.length > 0 && <DnsRecords title="Authority" records={authority} />}
    </>
  );
}

function TracerouteDetails({ data }: { data: JsonObject }) {
  const hops = Array.isArray(data.hops) ? data.hops.map((h) => (isObj(h) ? h : { address: h })) : [];
  if (!hops.length) return null;
  return (
    <Section title="Hops">
      <Table rows={hops} columns={columnsOf(hops, ["hop", "ttl", "distance", "address", "ip", "name", "hostname", "rtts_ms", "rtts", "avg_rtt_ms", "rtt_ms", "loss"])} />
    </Section>
  );
}
