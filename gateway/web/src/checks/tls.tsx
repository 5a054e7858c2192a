// tls: a TLS handshake with host:port (SNI, optionally after STARTTLS): protocol, cipher, ALPN, the chain.
import { CertificateChain, daysLeftText, words } from "../components/certificates";
import { Facts } from "../components/details";
import type { TlsResult } from "../gen/hostcheck/v1/tls_pb";
import { formatHostPort, formatMs } from "../lib/format";
import { defineCheckType } from "./types";

function Details({ result }: { result: TlsResult }) {
  const verified = result.verified ? "yes" : result.verifyError ? `no: ${result.verifyError}` : "";
  return (
    <>
      <Facts
        facts={[
          ["Address", formatHostPort(result.address, result.port)],
          ["Server name (SNI)", result.serverName || (result.address && "none (address target)")],
          ["Version", result.version],
          ["Cipher", result.cipher && `${result.cipher}${result.cipherBits ? ` (${result.cipherBits} bits)` : ""}`],
          ["ALPN", result.alpn],
          ["Verified", verified],
          ["Expiry", result.chain.length > 0 && daysLeftText(result.daysLeft)],
          ["Name lookup", result.dnsMs > 0 && formatMs(result.dnsMs)],
          ["Connect", result.connectMs > 0 && formatMs(result.connectMs)],
          ["STARTTLS", result.starttlsMs > 0 && formatMs(result.starttlsMs)],
          ["Handshake", result.handshakeMs > 0 && formatMs(result.handshakeMs)],
          ["Failed while", result.phase],
        ]}
      />
      <CertificateChain chain={result.chain} />
    </>
  );
}

export default defineCheckType({
  name: "tls",
  label: "TLS",
  order: 70,
  form: {
    fields: [
      { key: "port", label: "Port", hint: "Default: the target's, else 443", placeholder: "443", numeric: true },
      { key: "server_name", label: "Server name (SNI)", hint: "Default: the target's host name", placeholder: "www.example.com" },
      { key: "starttls", label: "STARTTLS", choices: ["none", "smtp", "imap", "pop3", "ftp"] },
      { key: "alpn", label: "ALPN", hint: "Offered in order. Default: h2, http/1.1", placeholder: "h2, http/1.1" },
      { key: "min_days_left", label: "Minimum days left", hint: "Fail when a certificate expires sooner", numeric: true },
      { key: "insecure", label: "Certificate", choices: ["must verify", "report only (insecure)"] },
    ],
    toOptions: (read) => ({
      port: read.uint("port"),
      serverName: read.text("server_name"),
      starttls: read.text("starttls") === "none" ? "" : read.text("starttls"),
      alpn: words(read.text("alpn")),
      minDaysLeft: read.uint("min_days_left"),
      insecure: read.text("insecure") !== "must verify",
    }),
  },
  Details,
  summary: (r) =>
    [r.version, r.chain.length > 0 && daysLeftText(r.daysLeft), r.verified ? "verified" : r.verifyError].filter(Boolean).join(" · "),
  latency: { meaning: "handshake time", of: (r) => r.handshakeMs || undefined },
});
