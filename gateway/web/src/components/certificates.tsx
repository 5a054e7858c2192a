// A TLS session and its certificate chain, shared by the modules of the types that speak TLS (src/checks/).
import type { Certificate, TlsInfo } from "../gen/hostcheck/v1/http_pb";
import { Facts, Section } from "./details";

/** "20 days left", "expires today", "expired 3 days ago" from whole days left (floor). */
export function daysLeftText(daysLeft: number): string {
  if (daysLeft < 0) return `expired ${-daysLeft} day${daysLeft === -1 ? "" : "s"} ago`;
  if (daysLeft === 0) return "expires within a day";
  return `${daysLeft} day${daysLeft === 1 ? "" : "s"} left`;
}

function CertificateCard({ cert, position }: { cert: Certificate; position: string }) {
  const key = cert.keyType && `${cert.keyType}${cert.keyBits ? ` ${cert.keyBits} bits` : ""}`;
  return (
    <li className="rounded border border-slate-200 p-2" data-certificate={position}>
      <div className="mb-1 text-xs font-medium uppercase tracking-wide text-slate-500">{position}</div>
      <Facts
        facts={[
          ["Subject", cert.subject],
          ["Issuer", cert.issuer],
          ["Names", cert.sans.join(", ")],
          ["Valid from", cert.notBefore],
          ["Valid until", cert.notAfter && `${cert.notAfter} (${daysLeftText(cert.daysLeft)})`],
          ["Key", key],
          ["Signature", cert.signatureAlgorithm],
          ["Serial", cert.serial],
          ["SHA-256", cert.sha256 && <span className="break-all font-mono text-xs">{cert.sha256}</span>],
        ]}
      />
    </li>
  );
}

/** The certificates the server sent, leaf first, each with its validity and key. */
export function CertificateChain({ chain }: { chain: readonly Certificate[] }) {
  if (!chain.length) return null;
  return (
    <Section title={`Certificate chain (${chain.length})`}>
      <ol className="space-y-2" aria-label="Certificate chain">
        {chain.map((cert, i) => (
          <CertificateCard
            key={cert.sha256 || i}
            cert={cert}
            position={i === 0 ? "leaf" : cert.isCa ? `CA ${i}` : `certificate ${i + 1}`}
          />
        ))}
      </ol>
    </Section>
  );
}

/** A connection's TLS session (http's and tcp's STARTTLS), then its chain. */
export function TlsSession({ tls }: { tls: TlsInfo }) {
  const chain = tls.chain.length ? tls.chain : tls.certificate ? [tls.certificate] : [];
  return (
    <>
      <Section title="TLS">
        <Facts
          facts={[
            ["Version", tls.version],
            ["Cipher", tls.cipher],
            ["ALPN", tls.alpn],
            ["Verified", tls.verified ? "yes" : "no (not checked: insecure)"],
          ]}
        />
      </Section>
      <CertificateChain chain={chain} />
    </>
  );
}

/** Comma- or space-separated words of an input. */
export function words(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}
