// udp: one datagram to host:port; the port's state and the reply, if one came.
import { Facts, Folded, Pre } from "../components/details";
import type { UdpResult } from "../gen/hostcheck/v1/udp_pb";
import { formatBytes, formatHostPort, formatMs } from "../lib/format";
import { defineCheckType } from "./types";

function Details({ result }: { result: UdpResult }) {
  return (
    <>
      <Facts
        facts={[
          ["Address", formatHostPort(result.address, result.port)],
          ["IP version", result.ipVersion ? `IPv${result.ipVersion}` : ""],
          ["State", result.state],
          ["Sent", formatBytes(result.payloadSize)],
          // 0 when the target was an address: nothing was looked up.
          ["Name lookup", result.dnsMs > 0 && formatMs(result.dnsMs)],
          ["Round trip", result.rttMs !== undefined && formatMs(result.rttMs)],
          ["Reply", result.replySize > 0 && formatBytes(result.replySize)],
        ]}
      />
      {result.replySize > 0 && (
        <Folded title={`Reply${result.replyTruncated ? " (first bytes)" : ""}`}>
          <Pre>{result.replyText}</Pre>
          <Pre>{result.replyHex}</Pre>
        </Folded>
      )}
    </>
  );
}

export default defineCheckType({
  name: "udp",
  label: "UDP",
  order: 50,
  form: {
    fields: [
      { key: "port", label: "Port", hint: "Unless the target is host:port", placeholder: "53", numeric: true },
      { key: "payload", label: "Payload", hint: "Text to send; default an empty datagram" },
    ],
    toOptions: (read) => ({ port: read.uint("port"), payload: read.raw("payload") }),
  },
  Details,
  summary: (r) => [formatHostPort(r.address, r.port), r.state].filter(Boolean).join(" · "),
  latency: { meaning: "reply round trip", of: (r) => r.rttMs },
});
