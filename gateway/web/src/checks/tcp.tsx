// tcp: a TCP handshake with host:port.
import { Facts } from "../components/details";
import type { TcpResult } from "../gen/hostcheck/v1/tcp_pb";
import { formatHostPort, formatMs } from "../lib/format";
import { defineCheckType } from "./types";

function Details({ result }: { result: TcpResult }) {
  return (
    <Facts
      facts={[
        ["Address", formatHostPort(result.address, result.port)],
        ["IP version", result.ipVersion ? `IPv${result.ipVersion}` : ""],
        // 0 when the target was an address: nothing was looked up.
        ["Name lookup", result.dnsMs > 0 && formatMs(result.dnsMs)],
        ["Connect", result.connectMs > 0 && formatMs(result.connectMs)],
      ]}
    />
  );
}

export default defineCheckType({
  name: "tcp",
  label: "TCP",
  order: 20,
  form: {
    fields: [{ key: "port", label: "Port", hint: "Unless the target is host:port", placeholder: "443", numeric: true }],
    toOptions: (read) => ({ port: read.uint("port") }),
  },
  Details,
  summary: (r) => formatHostPort(r.address, r.port),
  latency: { meaning: "connect time", of: (r) => r.connectMs || undefined },
});
