// http: one request (redirects followed as a chain): status, phase timings, TLS, headers, body.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { TlsSession, words } from "../components/certificates";
import { Facts, Folded, Pre, Section } from "../components/details";
import type { HeaderRegexpSchema, HttpResult, HttpTimings } from "../gen/hostcheck/v1/http_pb";
import { formatBytes, formatMs } from "../lib/format";
import { defineCheckType } from "./types";

const PHASES: { label: string; color: string; ms: (t: HttpTimings) => number }[] = [
  { label: "Name lookup", color: "bg-violet-400", ms: (t) => t.dnsMs },
  { label: "Connect", color: "bg-amber-400", ms: (t) => t.tcpMs },
  { label: "TLS", color: "bg-rose-400", ms: (t) => t.tlsMs },
  { label: "Waiting (first byte)", color: "bg-sky-500", ms: (t) => t.firstByteMs },
  { label: "Download", color: "bg-emerald-500", ms: (t) => t.downloadMs },
];
// Shorter spans print as "0.00 ms" (formatMs keeps two decimals): noise, not a phase.
const SHOWN_MS = 0.01;

/** The last request's phases as durations, plus the time no phase accounts for (the prober's own). */
function httpPhases(t: HttpTimings): { label: string; color: string; ms: number }[] {
  const phases = PHASES.map((p) => ({ label: p.label, color: p.color, ms: p.ms(t) }));
  const other = t.totalMs - phases.reduce((sum, p) => sum + p.ms, 0);
  return [...phases, { label: "Other", color: "bg-slate-300", ms: other }].filter((p) => p.ms >= SHOWN_MS);
}

function Timing({ timings }: { timings: HttpTimings }) {
  const phases = httpPhases(timings);
  if (!phases.length) return null;
  const whole = Math.max(timings.totalMs, phases.reduce((sum, p) => sum + p.ms, 0));
  return (
    <Section title="Timing">
      <div className="flex h-4 w-full overflow-hidden rounded bg-slate-100" role="img" aria-label="Request phases">
        {phases.map((p) => (
          <div key={p.label} className={p.color} style={{ width: `${(p.ms / whole) * 100}%` }} title={`${p.label}: ${formatMs(p.ms)}`} />
        ))}
      </div>
      <ul className="mt-2 flex flex-wrap gap-x-4 gap-y-1 text-xs text-slate-600">
        {phases.map((p) => (
          <li key={p.label} className="flex items-center gap-1">
            <span className={`inline-block h-2.5 w-2.5 rounded-sm ${p.color}`} />
            {p.label} {formatMs(p.ms)}
          </li>
        ))}
        {timings.totalMs > 0 && <li className="font-medium">Total {formatMs(timings.totalMs)}</li>}
      </ul>
    </Section>
  );
}

function Details({ result }: { result: HttpResult }) {
  const headers = Object.entries(result.headers);
  return (
    <>
      <Facts
        facts={[
          ["Status", result.statusCode > 0 && `${result.statusCode} ${result.reason}`.trim()],
          ["URL", result.url],
          ["Address", result.address && `${result.address}${result.ipVersion ? ` (IPv${result.ipVersion})` : ""}`],
          ["Method", result.method],
          ["Version", result.httpVersion],
          [
            "Body size",
            result.statusCode > 0 &&
              `${formatBytes(result.bodySize)}${result.bodyOverLimit ? " (read up to the agent's limit)" : result.bodyTruncated ? " (first 10 KiB shown)" : ""}`,
          ],
          ["Total time", result.totalMs > 0 && formatMs(result.totalMs)],
          ["Failed while", result.phase],
        ]}
      />
      {result.timings && <Timing timings={result.timings} />}
      {result.tls && <TlsSession tls={result.tls} />}
      {result.redirects.length > 0 && (
        <Section title="Redirects">
          <ol className="list-inside list-decimal space-y-0.5">
            {result.redirects.map((r, i) => (
              <li key={i} className="break-all">
                {r.statusCode} {r.url} {r.location && `→ ${r.location}`}{" "}
                <span className="text-slate-500">({formatMs(r.durationMs)})</span>
              </li>
            ))}
          </ol>
        </Section>
      )}
      {result.body && (
        <Folded title={`Response body${result.bodyTruncated ? " (first 10 KiB)" : ""}`}>
          <Pre>{result.body}</Pre>
        </Folded>
      )}
      {headers.length > 0 && (
        <Folded title="Response headers">
          <div className="font-mono text-xs">
            <Facts facts={headers} />
          </div>
        </Folded>
      )}
    </>
  );
}

/** "Name: regexp" as one header assertion (the value must match); empty: none. */
function headerRule(text: string): MessageInitShape<typeof HeaderRegexpSchema>[] {
  if (!text) return [];
  const colon = text.indexOf(":");
  return colon < 0 ? [{ header: text, regexp: "" }] : [{ header: text.slice(0, colon).trim(), regexp: text.slice(colon + 1).trim() }];
}

export default defineCheckType({
  name: "http",
  label: "HTTP",
  order: 10,
  checkedByDefault: true,
  form: {
    fields: [
      { key: "method", label: "Method", choices: ["GET", "HEAD", "POST", "OPTIONS"] },
      { key: "path", label: "Path", hint: "Default: the URL's path or /", placeholder: "/" },
      { key: "expected_status", label: "Expected status codes", hint: "e.g. 200, 204. Default: 200-399", placeholder: "200-399", numeric: true },
      { key: "port", label: "Port", hint: "Default: from the URL, 80 or 443", numeric: true },
      { key: "body_regexp", label: "Body must match", hint: "RE2 regular expression, over the whole body", placeholder: "Welcome" },
      { key: "header_regexp", label: "Header must match", hint: "Name: RE2 regular expression", placeholder: "Content-Type: ^text/html" },
      { key: "valid_http_versions", label: "HTTP versions", hint: "Any of, e.g. HTTP/1.1, HTTP/2. Default: any", placeholder: "HTTP/1.1, HTTP/2" },
      { key: "fail_if_not_ssl", label: "TLS", choices: ["either", "required", "forbidden"] },
      { key: "insecure_tls", label: "Certificate", choices: ["verify", "report only (insecure)"] },
    ],
    toOptions: (read) => ({
      method: read.text("method"),
      path: read.text("path"),
      expectedStatus: read.uints("expected_status"),
      port: read.uint("port"),
      bodyRegexp: read.text("body_regexp"),
      headerRegexp: headerRule(read.text("header_regexp")),
      validHttpVersions: words(read.text("valid_http_versions")),
      failIfNotSsl: read.text("fail_if_not_ssl") === "required",
      failIfSsl: read.text("fail_if_not_ssl") === "forbidden",
      insecureTls: read.text("insecure_tls") !== "verify",
    }),
  },
  Details,
  summary: (r) => [r.statusCode > 0 && `HTTP ${r.statusCode}`, r.address].filter(Boolean).join(" · "),
  latency: { meaning: "total time", of: (r) => r.totalMs || undefined },
});
