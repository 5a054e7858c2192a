// The gRPC-Web clients (through Envoy, on the page's own origin) and the one place where
// RPC errors become words and per-field messages.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb";
import { MonitorsService } from "../gen/hostcheck/v1/monitors_pb";
import { RegistryService } from "../gen/hostcheck/v1/registry_pb";
import { ResultsService } from "../gen/hostcheck/v1/results_pb";
import { SchedulerService } from "../gen/hostcheck/v1/scheduler_pb";
import { getApiKey } from "./apikey";

// The pasted API key (lib/apikey.ts), if any, goes with every call.
const withApiKey: Interceptor = (next) => async (req) => {
  const key = getApiKey();
  if (key) req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};

const transport = createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [withApiKey] });

export const scheduler = createClient(SchedulerService, transport);
export const results = createClient(ResultsService, transport);
export const registry = createClient(RegistryService, transport);
export const monitors = createClient(MonitorsService, transport);

/** Field violations of an INVALID_ARGUMENT, keyed by the server's field name ("agents.limit", "checks[0]"). */
export function fieldViolations(err: unknown): { field: string; description: string }[] {
  const ce = ConnectError.from(err);
  if (ce.code !== Code.InvalidArgument) return [];
  return ce.findDetails(BadRequestSchema).flatMap((br) =>
    br.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
  );
}

const CODE_WORDS: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "The server is not reachable right now",
  [Code.DeadlineExceeded]: "The server took too long to answer",
  [Code.NotFound]: "Not found",
  [Code.ResourceExhausted]: "Too many requests",
  [Code.PermissionDenied]: "Not allowed",
  [Code.Unauthenticated]: "Not signed in (check the API key in the header)",
  [Code.Internal]: "The server failed",
  [Code.Unknown]: "Something went wrong",
};

/** A sentence for a person: what went wrong, in words. */
export function describeError(err: unknown): string {
  const ce = ConnectError.from(err);
  const words = CODE_WORDS[ce.code];
  const message = ce.rawMessage.trim();
  if (ce.code === Code.Unknown && /fetch|network/i.test(message)) {
    return "The server is not reachable (network error). Is Host Checker running?";
  }
  if (words && message) return `${words}: ${message}`;
  return words ?? message ?? "Something went wrong";
}

export function isNotFound(err: unknown): boolean {
  return ConnectError.from(err).code === Code.NotFound;
}

export function isCanceled(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}
