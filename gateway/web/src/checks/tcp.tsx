// tcp: a TCP handshake with host:port; optionally STARTTLS, a line sent and a reply expected.
import { TlsSession } from "../components/certificates";
import { Facts, Folded, Pre } from "../components/details";
import type { TcpResult } from "../gen/hostcheck/v1/tcp_pb";
import { formatHostPort, formatMs } from "../lib/format";
import { defineCheckType } from "./types";

const STARTTLS = ["none", "smtp", "imap", "pop3", "ftp"];

/** What a person types for "send": \r, \n, \t and \\ stand for the control characters an input cannot hold. */
function unescape(text: string): string {
  const table: Record<string, string> = { r: "\r", n: "\n", t: "\t", "\\": "\\" };
  return text.replace(/\\([rnt\\])/g, (_, c: string) => table[c]);
}

function Details({ result }: { result: TcpResult }) {
  return (
    <>
      <Facts
        facts={[
          ["Address", formatHostPort(result.address, result.port)],
          ["IP version", result.ipVersion ? `IPv${result.ipVersion}` : ""],
          // 0 when the target was an address: nothing was looked up.
          ["Name lookup", result.dnsMs > 0 && formatMs(result.dnsMs)],
          ["Connect", result.connectMs > 0 && formatMs(result.connectMs)],
          ["STARTTLS", result.starttlsMs > 0 && formatMs(result.starttlsMs)],
          ["TLS handshake", result.tlsMs > 0 && formatMs(result.tlsMs)],
          ["Response", result.responseMs > 0 && formatMs(result.responseMs)],
          ["Failed while", result.phase],
        ]}
      />
      {result.tls && <TlsSession tls={result.tls} />}
      {result.received && (
        <Folded title="Received">
          <Pre>{result.received}</Pre>
        </Folded>
      )}
    </>
  );
}

export default defineCheckType({
  name: "tcp",
  label: "TCP",
  order: 20,
  form: {
    fields: [
      { key: "port", label: "Port", hint: "Unless the target is host:port", placeholder: "443", numeric: true },
      { key: "starttls", label: "STARTTLS", choices: STARTTLS },
      { key: "send", label: "Send", hint: "After connecting (and STARTTLS); \\r\\n for a line end", placeholder: "EHLO example\\r\\n" },
      { key: "expect", label: "Expect", hint: "RE2 regular expression the reply must match", placeholder: "^220 " },
    ],
    toOptions: (read) => ({
      port: read.uint("port"),
      starttls: read.text("starttls") === "none" ? "" : read.text("starttls"),
      send: unescape(read.raw("send")),
      expect: read.raw("expect"),
    }),
  },
  Details,
  summary: (r) => [formatHostPort(r.address, r.port), r.tls?.version].filter(Boolean).join(" · "),
  latency: { meaning: "connect time", of: (r) => r.connectMs || undefined },
});
