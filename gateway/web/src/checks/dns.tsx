// dns: one query to the agent's resolver or a given one over udp, tcp or tls, or a trace from the root.
import { Facts, Section, Table, type Column } from "../components/details";
import type { DnsRecord, DnsResult, DnsTraceStep } from "../gen/hostcheck/v1/dns_pb";
import { formatMs } from "../lib/format";
import { defineCheckType } from "./types";

// `value` is the record's data in zone-file form, so it already holds priority, weight, ...
const COLUMNS: Column<DnsRecord>[] = [
  { label: "Name", cell: (r) => r.name },
  { label: "Type", cell: (r) => r.type },
  { label: "TTL", cell: (r) => r.ttl },
  { label: "Value", cell: (r) => r.value },
];

function Records({ title, records }: { title: string; records: DnsRecord[] }) {
  return (
    <Section title={title}>
      {records.length ? <Table rows={records} columns={COLUMNS} label={`${title} records`} /> : <p className="text-slate-500">None.</p>}
    </Section>
  );
}

const STEP_COLUMNS: Column<DnsTraceStep>[] = [
  { label: "Zone", cell: (s) => s.zone },
  { label: "Server", cell: (s) => (s.serverName ? `${s.server} (${s.serverName})` : s.server) },
  { label: "Rcode", cell: (s) => s.rcode || s.error },
  { label: "Time", cell: (s) => formatMs(s.queryMs) },
  {
    label: "Said",
    cell: (s) =>
      s.answers.length
        ? s.answers.map((r) => `${r.name} ${r.type} ${r.value}`).join("; ")
        : s.referral.length
          ? `ask ${s.referral[0].name}: ${s.referral.map((r) => r.value).join(", ")}`
          : "",
  },
];

function Details({ result }: { result: DnsResult }) {
  return (
    <>
      <Facts
        facts={[
          ["Query", result.query && `${result.query} ${result.recordType}`],
          ["Resolver", result.query && result.trace.length === 0 && (result.resolver || "the agent's own")],
          ["Protocol", result.protocol],
          ["Response code", result.rcode],
          ["Query time", result.queryMs > 0 && formatMs(result.queryMs)],
        ]}
      />
      {/* An rcode means a response came: then "no records" is an answer worth showing. */}
      {(result.rcode || result.answers.length > 0) && <Records title="Answer" records={result.answers} />}
      {result.authority.length > 0 && <Records title="Authority" records={result.authority} />}
      {result.trace.length > 0 && (
        <Section title="Trace from the root">
          <Table rows={result.trace} columns={STEP_COLUMNS} label="Trace steps" />
        </Section>
      )}
    </>
  );
}

export default defineCheckType({
  name: "dns",
  label: "DNS",
  order: 40,
  form: {
    fields: [
      {
        key: "record_type",
        label: "Record type",
        choices: ["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "PTR", "SRV", "CAA", "DNSKEY", "DS", "HTTPS", "SVCB", "NAPTR", "TLSA", "SSHFP"],
      },
      { key: "resolver", label: "Resolver", hint: "ip or ip:port; default: the agent's default resolver", placeholder: "1.1.1.1" },
      { key: "protocol", label: "Protocol", hint: "tls: DNS over TLS, port 853", choices: ["udp", "tcp", "tls"] },
      { key: "tls_server_name", label: "TLS name", hint: "tls only: the name on the resolver's certificate", placeholder: "one.one.one.one" },
      { key: "trace", label: "Trace from the root", hint: "no resolver; udp or tcp", choices: ["off", "on"] },
    ],
    toOptions: (read) => ({
      recordType: read.text("record_type"),
      resolver: read.text("resolver"),
      protocol: read.text("protocol"),
      tlsServerName: read.text("tls_server_name"),
      trace: read.text("trace") === "on",
    }),
  },
  Details,
  summary: (r) =>
    [r.rcode && r.rcode !== "NOERROR" && r.rcode, `${r.answers.length} record(s)`].filter(Boolean).join(" · "),
  latency: { meaning: "query time", of: (r) => r.queryMs || undefined },
});
