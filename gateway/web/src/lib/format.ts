// Small formatting helpers shared by the pages.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";

export function toDate(ts: Timestamp | undefined): Date | undefined {
  if (!ts || (ts.seconds === 0n && ts.nanos === 0)) return undefined;
  return timestampDate(ts);
}

export function formatMs(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return "—";
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export function formatTime(ts: Timestamp | undefined): string {
  const d = toDate(ts);
  return d ? d.toLocaleString() : "—";
}

/** "3 s ago", "5 min ago"; relative to `now` (ms since epoch). */
export function formatAgo(ts: Timestamp | undefined, now: number): string {
  const d = toDate(ts);
  if (!d) return "never";
  const s = Math.max(0, Math.round((now - d.getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return d.toLocaleString();
}

/** Where an agent is, from the most specific parts there are. */
export function formatLocation(parts: { location?: string; city?: string; country?: string; region?: string }): string {
  const place = [parts.city, parts.country].filter(Boolean).join(", ");
  const main = parts.location || place;
  const extra = parts.region ? ` (${parts.region})` : "";
  return (main || parts.region || "unknown") + (main ? extra : "");
}

/** A fraction 0-1 as a percentage: 0.25 -> "25%", 0.125 -> "12.5%". */
export function formatPercent(fraction: number): string {
  return `${+(fraction * 100).toFixed(1)}%`;
}

/** A byte count for people: 512 B, 1.5 KiB, 2.0 MiB. */
export function formatBytes(n: number | bigint): string {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  return `${(v / (1024 * 1024)).toFixed(1)} MiB`;
}

/** An address and port as one connects to them: 192.0.2.1:80, [2001:db8::1]:80. */
export function formatHostPort(address: string, port: number): string {
  if (!address) return port ? `:${port}` : "";
  if (!port) return address;
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
