// dns: one query to the agent's resolver or a given one; the answer and authority records.
import { Facts, Section, Table, type Column } from "../components/details";
import type { DnsRecord, DnsResult } from "../gen/hostcheck/v1/dns_pb";
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

function Details({ result }: { result: DnsResult }) {
  return (
    <>
      <Facts
        facts={[
          ["Query", result.query && `${result.query} ${result.recordType}`],
          ["Resolver", result.query && (result.resolver || "the agent's own")],
          ["Response code", result.rcode],
          ["Query time", result.queryMs > 0 && formatMs(result.queryMs)],
        ]}
      />
      {/* An rcode means a response came: then "no records" is an answer worth showing. */}
      {(result.rcode || result.answers.length > 0) && <Records title="Answer" records={result.answers} />}
      {result.authority.length > 0 && <Records title="Authority" records={result.authority} />}
    </>
  );
}

export default defineCheckType({
  name: "dns",
  label: "DNS",
  order: 40,
  form: {
    fields: [
      { key: "record_type", label: "Record type", choices: ["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "PTR", "SRV", "CAA"] },
      { key: "resolver", label: "Resolver", hint: "ip or ip:port; default: the agent's own", placeholder: "1.1.1.1" },
    ],
    toOptions: (read) => ({ recordType: read.text("record_type"), resolver: read.text("resolver") }),
  },
  Details,
  summary: (r) =>
    [r.rcode && r.rcode !== "NOERROR" && r.rcode, `${r.answers.length} record(s)`].filter(Boolean).join(" · "),
  latency: { meaning: "query time", of: (r) => r.queryMs || undefined },
});
