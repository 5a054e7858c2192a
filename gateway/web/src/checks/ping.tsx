// ping: ICMP echo requests or TCP connections; round trips per packet and their statistics.
import { Facts, Section } from "../components/details";
import type { PingResult } from "../gen/hostcheck/v1/ping_pb";
import { formatMs, formatPercent } from "../lib/format";
import { defineCheckType } from "./types";

/** Each request's round trip (undefined: no reply), from `packets`, else from the replies' `rtts_ms`. */
function roundTrips(r: PingResult): { key: string; ms: number | undefined; refused?: boolean }[] {
  if (r.packets.length) return r.packets.map((p, i) => ({ key: String(i + 1), ms: p.rttMs, refused: p.refused }));
  return r.rttsMs.map((ms, i) => ({ key: String(i + 1), ms }));
}

function RoundTrips({ result }: { result: PingResult }) {
  const rows = roundTrips(result);
  if (!rows.length) return <p className="text-slate-500">No round trips reported.</p>;
  const max = Math.max(1, ...rows.map((r) => r.ms ?? 0));
  return (
    <ol className="space-y-1" aria-label="Round trip per request">
      {rows.map((r) => (
        <li key={r.key} className="flex items-center gap-2">
          <span className="w-6 text-right text-xs text-slate-500">{r.key}</span>
          <span className="h-2 rounded bg-sky-500" style={{ width: `${r.ms === undefined ? 0 : Math.max(2, (r.ms / max) * 60)}%` }} />
          <span className="tabular-nums">{r.ms === undefined ? "lost" : `${formatMs(r.ms)}${r.refused ? " (reset)" : ""}`}</span>
        </li>
      ))}
    </ol>
  );
}

function Details({ result }: { result: PingResult }) {
  const stats = [result.rttMinMs, result.rttAvgMs, result.rttMaxMs];
  return (
    <>
      <Facts
        facts={[
          ["Address", result.address && `${result.address}${result.ipVersion ? ` (IPv${result.ipVersion})` : ""}`],
          ["Protocol", result.protocol === "tcp" ? `tcp port ${result.port} (SYN to SYN-ACK)` : result.protocol],
          ["Refused (port closed)", result.refused > 0 && `${result.refused} of ${result.packetsReceived}`],
          ["Packets", result.packetsSent > 0 && `${result.packetsReceived} of ${result.packetsSent} answered`],
          ["Packet loss", result.packetsSent > 0 && formatPercent(result.packetLoss)],
          ["Duplicates", result.duplicates > 0 && String(result.duplicates)],
          ["Min / avg / max", stats.every((v) => v !== undefined) && stats.map((v) => formatMs(v)).join(" / ")],
          ["Std deviation", result.rttStddevMs !== undefined && formatMs(result.rttStddevMs)],
          ["TTL", result.ttl !== undefined && String(result.ttl)],
          ["Payload", result.packetsSent > 0 && result.protocol !== "tcp" && `${result.size} bytes`],
          ["Socket", result.socket],
        ]}
      />
      <Section title="Round trips">
        <RoundTrips result={result} />
      </Section>
    </>
  );
}

export default defineCheckType({
  name: "ping",
  label: "Ping",
  order: 30,
  form: {
    fields: [
      { key: "count", label: "Count", hint: "Probes, 1-16. Default 4", placeholder: "4", numeric: true },
      { key: "protocol", label: "Protocol", hint: "tcp: a connection per probe", choices: ["icmp", "tcp"] },
      { key: "port", label: "Port", hint: "tcp only. Default the target's, else 80", placeholder: "443", numeric: true },
    ],
    toOptions: (read) => ({ count: read.uint("count"), protocol: read.text("protocol"), port: read.uint("port") }),
  },
  Details,
  summary: (r) =>
    [r.rttAvgMs !== undefined && `avg ${formatMs(r.rttAvgMs)}`, r.packetsSent > 0 && `${formatPercent(r.packetLoss)} loss`]
      .filter(Boolean)
      .join(" · "),
  latency: { meaning: "average round trip", of: (r) => r.rttAvgMs },
});
