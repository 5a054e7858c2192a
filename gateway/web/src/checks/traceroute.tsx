// traceroute: the routers on the way to the target, hop by hop (ICMP, UDP or TCP probes).
import { Facts, Section, Table, type Column } from "../components/details";
import type { TracerouteHop, TracerouteResult } from "../gen/hostcheck/v1/traceroute_pb";
import { formatMs, formatPercent } from "../lib/format";
import { defineCheckType } from "./types";

function hopColumns(hops: TracerouteHop[]): Column<TracerouteHop>[] {
  return [
    { label: "Hop", cell: (h) => h.hop },
    { label: "Address", cell: (h) => (h.addresses.length > 1 ? h.addresses.join(", ") : h.address || "*") },
    { label: "Name", cell: (h) => h.name, show: hops.some((h) => h.name) },
    { label: "Round trips", cell: (h) => h.rttsMs.map((ms) => formatMs(ms)).join("  ") },
    { label: "Average", cell: (h) => (h.avgRttMs === undefined ? "" : formatMs(h.avgRttMs)) },
    { label: "Loss", cell: (h) => formatPercent(h.loss) },
    { label: "Unreachable", cell: (h) => h.unreachable, show: hops.some((h) => h.unreachable) },
  ];
}

function Details({ result }: { result: TracerouteResult }) {
  return (
    <>
      <Facts
        facts={[
          ["Address", result.address && `${result.address}${result.ipVersion ? ` (IPv${result.ipVersion})` : ""}`],
          ["Protocol", result.protocol && `${result.protocol}${result.port ? ` port ${result.port}` : ""}`],
          ["Reached", result.destinationReached ? "yes" : "no"],
          ["Hops", result.hopCount > 0 && `${result.hopCount} (at most ${result.maxHops}, ${result.probesPerHop} probes each)`],
        ]}
      />
      {result.hops.length > 0 && (
        <Section title="Hops">
          <Table rows={result.hops} columns={hopColumns(result.hops)} label="Hops" />
        </Section>
      )}
    </>
  );
}

export default defineCheckType({
  name: "traceroute",
  label: "Traceroute",
  order: 60,
  form: {
    fields: [
      { key: "max_hops", label: "Max hops", hint: "1-64. Default 30", placeholder: "30", numeric: true },
      { key: "protocol", label: "Protocol", choices: ["icmp", "udp", "tcp"] },
      { key: "port", label: "Port", hint: "udp/tcp. Default 33434 (udp), the target's or 80 (tcp)", placeholder: "80", numeric: true },
    ],
    toOptions: (read) => ({ maxHops: read.uint("max_hops"), protocol: read.text("protocol"), port: read.uint("port") }),
  },
  Details,
  summary: (r) => `${r.hopCount || r.hops.length} hop(s)${r.destinationReached ? "" : ", not reached"}`,
});
