// mtr: rounds of probes to every hop, as `mtr --report`: loss and round-trip statistics per hop.
import { Facts, Section, Table, type Column } from "../components/details";
import type { MtrHop, MtrResult } from "../gen/hostcheck/v1/mtr_pb";
import { formatMs } from "../lib/format";
import { defineCheckType } from "./types";

const ms = (value: number | undefined) => (value === undefined ? "" : formatMs(value));

// mtr's columns: Loss% Snt Last Avg Best Wrst StDev, then jitter.
function hopColumns(hops: MtrHop[]): Column<MtrHop>[] {
  return [
    { label: "Hop", cell: (h) => h.hop },
    { label: "Host", cell: (h) => (h.addresses.length > 1 ? h.addresses.join(", ") : h.address || "???") },
    { label: "Name", cell: (h) => h.name, show: hops.some((h) => h.name) },
    { label: "Loss%", cell: (h) => `${h.lossPercent.toFixed(1)}%` },
    { label: "Snt", cell: (h) => h.sent },
    { label: "Last", cell: (h) => ms(h.lastMs) },
    { label: "Avg", cell: (h) => ms(h.avgMs) },
    { label: "Best", cell: (h) => ms(h.bestMs) },
    { label: "Wrst", cell: (h) => ms(h.worstMs) },
    { label: "StDev", cell: (h) => ms(h.stddevMs) },
    { label: "Jitter avg / max", cell: (h) => (h.jitterAvgMs === undefined ? "" : `${ms(h.jitterAvgMs)} / ${ms(h.jitterMaxMs)}`) },
    { label: "Unreachable", cell: (h) => h.unreachable, show: hops.some((h) => h.unreachable) },
  ];
}

function Details({ result }: { result: MtrResult }) {
  return (
    <>
      <Facts
        facts={[
          ["Address", result.address && `${result.address}${result.ipVersion ? ` (IPv${result.ipVersion})` : ""}`],
          ["Protocol", result.protocol && `${result.protocol}${result.port ? ` port ${result.port}` : ""}`],
          ["Rounds", result.count > 0 && String(result.count)],
          ["Reached", result.address && (result.destinationReached ? "yes" : "no")],
        ]}
      />
      {result.hops.length > 0 && (
        <Section title="Hops">
          <Table rows={result.hops} columns={hopColumns(result.hops)} label="mtr hops" />
        </Section>
      )}
    </>
  );
}

export default defineCheckType({
  name: "mtr",
  label: "MTR",
  order: 80,
  form: {
    fields: [
      { key: "protocol", label: "Protocol", choices: ["icmp", "udp", "tcp"] },
      { key: "port", label: "Port", hint: "udp/tcp. Default 33434 (udp), the target's or 80 (tcp)", placeholder: "80", numeric: true },
      { key: "count", label: "Rounds", hint: "1-30. Default 10", placeholder: "10", numeric: true },
      { key: "interval_ms", label: "Interval (ms)", hint: "100-5000. Default 250", placeholder: "250", numeric: true },
      { key: "max_hops", label: "Max hops", hint: "1-64. Default 30", placeholder: "30", numeric: true },
      { key: "resolve_names", label: "Hop names", choices: ["off", "on"] },
    ],
    toOptions: (read) => ({
      protocol: read.text("protocol"),
      port: read.uint("port"),
      count: read.uint("count"),
      intervalMs: read.uint("interval_ms"),
      maxHops: read.uint("max_hops"),
      resolveNames: read.text("resolve_names") === "on",
    }),
  },
  Details,
  summary: (r) => {
    const last = r.hops[r.hops.length - 1];
    return [`${r.hops.length} hop(s)${r.destinationReached ? "" : ", not reached"}`,
      last?.avgMs !== undefined && `last hop avg ${formatMs(last.avgMs)}`,
      last && `${last.lossPercent.toFixed(1)}% loss`].filter(Boolean).join(" · ");
  },
  latency: { meaning: "last hop's average round trip", of: (r) => (r.destinationReached ? r.hops[r.hops.length - 1]?.avgMs : undefined) },
});
