// /monitors/new: a monitor is a check (the new-check form's inputs, shared) run every interval,
// plus how it alerts. The server validates; its field violations are shown at the inputs they name.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { Link, useNavigate } from "react-router";
import { Card } from "../components/ui";
import { CreateMonitorRequestSchema, MonitorAlertSchema, type CreateMonitorRequest, type Monitor } from "../gen/hostcheck/v1/monitors_pb";
import { CreateCheckRequestSchema } from "../gen/hostcheck/v1/scheduler_pb";
import { describeError, fieldViolations, monitors } from "../lib/api";
import { useApiKey } from "../lib/apikey";
import { NeedsApiKey } from "./MonitorsParts";
import {
  addError, buildRequest, CheckSpecFields, Field, FIELDS_ON_FORM, INITIAL as CHECK_INITIAL, Options, parseUint,
  type Errors, type Form as CheckForm,
} from "./NewCheckForm";
import { FormErrors } from "../components/FormErrors";

type Form = {
  name: string;
  check: CheckForm;
  intervalS: string;
  timeoutMs: string;
  quorum: string;
  forRuns: string;
  webhookUrl: string;
  statusSlug: string;
  paused: boolean;
};

const INITIAL: Form = {
  name: "",
  check: CHECK_INITIAL,
  intervalS: "60",
  timeoutMs: "",
  quorum: "1",
  forRuns: "1",
  webhookUrl: "",
  statusSlug: "",
  paused: false,
};

// The monitor's own inputs, by the server field they answer for.
const MONITOR_FIELDS = ["name", "interval_s", "timeout_ms", "alert.quorum", "alert.for_runs", "alert.webhook_url", "status_slug"];
const ON_FORM = new Set([...FIELDS_ON_FORM, ...MONITOR_FIELDS]);

function buildMonitorRequest(form: Form): { request?: CreateMonitorRequest; errors: Errors } {
  const { request: check, errors } = buildRequest(form.check);
  const intervalS = parseUint(form.intervalS, "interval_s", errors);
  const timeoutMs = parseUint(form.timeoutMs, "timeout_ms", errors);
  const quorum = parseUint(form.quorum, "alert.quorum", errors);
  const forRuns = parseUint(form.forRuns, "alert.for_runs", errors);
  if (!check || Object.keys(errors).length) return { errors };
  // Fields 1-13 of CreateMonitorRequest are CreateCheckRequest's, with the same numbers.
  const request = fromBinary(CreateMonitorRequestSchema, toBinary(CreateCheckRequestSchema, check));
  request.name = form.name.trim();
  request.intervalS = intervalS ?? 0;
  request.timeoutMs = timeoutMs ?? 0;
  request.alert = create(MonitorAlertSchema, { quorum, forRuns, webhookUrl: form.webhookUrl.trim() });
  request.statusSlug = form.statusSlug.trim();
  request.paused = form.paused;
  return { request, errors };
}

export function NewMonitorPage() {
  const apiKey = useApiKey();
  return (
    <div className="space-y-6">
      <p className="text-sm">
        <Link to="/monitors" className="text-sky-700 underline-offset-2 hover:underline">Monitors</Link>
      </p>
      <Card title="New monitor">{apiKey ? <NewMonitorForm /> : <NeedsApiKey />}</Card>
    </div>
  );
}

function NewMonitorForm() {
  const [form, setForm] = useState<Form>(INITIAL);
  const [errors, setErrors] = useState<Errors>({});
  const [created, setCreated] = useState<Monitor>();
  const formRef = useRef<HTMLFormElement>(null);
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const set = <K extends keyof Form>(key: K, value: Form[K]) => setForm((f) => ({ ...f, [key]: value }));

  const [focusRequest, setFocusRequest] = useState(0);
  useEffect(() => {
    if (focusRequest) formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [focusRequest]);

  const mutation = useMutation({
    mutationFn: (request: CreateMonitorRequest) => monitors.createMonitor(request),
    onSuccess: (monitor) => {
      void queryClient.invalidateQueries({ queryKey: ["monitors", "list"] });
      // The webhook secret is in this answer only: show it before leaving.
      if (monitor.webhookSecret) setCreated(monitor);
      else navigate(`/monitors/${monitor.monitorId}`);
    },
    onError: (err) => {
      const next: Errors = {};
      for (const v of fieldViolations(err)) addError(next, v.field, v.description);
      setErrors(next);
      setFocusRequest((n) => n + 1);
    },
  });

  if (created) return <Created monitor={created} />;

  const onSubmit = (e: React.FormEvent) => {
    e.preventDefault();
    const { request, errors: local } = buildMonitorRequest(form);
    setErrors(local);
    if (!request) {
      setFocusRequest((n) => n + 1);
      return;
    }
    mutation.mutate(request);
  };

  const hasFieldErrors = Object.keys(errors).length > 0;
  const otherError = mutation.isError && !hasFieldErrors ? describeError(mutation.error) : null;

  return (
    <form ref={formRef} onSubmit={onSubmit} noValidate aria-label="New monitor" className="space-y-5">
      <FormErrors errors={errors} onForm={ON_FORM} otherError={otherError} what="monitor" />

      <Field label="Name" field="name" errors={errors} hint="For people, 1-100 characters.">
        {(p) => <input {...p} name="name" autoComplete="off" placeholder="shop front page" value={form.name} onChange={(e) => set("name", e.target.value)} />}
      </Field>

      <CheckSpecFields form={form.check} errors={errors} update={(change) => setForm((f) => ({ ...f, check: change(f.check) }))} />

      <Options title="Schedule">
        <Field label="Interval (s)" field="interval_s" errors={errors} hint="Seconds between runs. Default 60">
          {(p) => <input {...p} name="interval_s" inputMode="numeric" placeholder="60" value={form.intervalS} onChange={(e) => set("intervalS", e.target.value)} />}
        </Field>
        <Field label="Timeout (ms)" field="timeout_ms" errors={errors} hint="Per run; below the interval">
          {(p) => <input {...p} name="timeout_ms" inputMode="numeric" placeholder="default" value={form.timeoutMs} onChange={(e) => set("timeoutMs", e.target.value)} />}
        </Field>
        <div className="flex items-end pb-2">
          <label className="flex items-center gap-2 text-sm text-slate-700">
            <input type="checkbox" name="paused" checked={form.paused} onChange={(e) => set("paused", e.target.checked)} className="accent-sky-600" />
            Start paused
          </label>
        </div>
      </Options>

      <Options title="Alerting" hint="The monitor is down when at least the quorum of agents fails the same run, for that many runs in a row.">
        <Field label="Quorum" field="alert.quorum" errors={errors} hint="Agents failing the same run. Default 1">
          {(p) => <input {...p} name="alert.quorum" inputMode="numeric" placeholder="1" value={form.quorum} onChange={(e) => set("quorum", e.target.value)} />}
        </Field>
        <Field label="For runs" field="alert.for_runs" errors={errors} hint="Consecutive runs. Default 1">
          {(p) => <input {...p} name="alert.for_runs" inputMode="numeric" placeholder="1" value={form.forRuns} onChange={(e) => set("forRuns", e.target.value)} />}
        </Field>
        <Field label="Webhook URL" field="alert.webhook_url" errors={errors} hint="POSTed a signed JSON on down and recovery" className="sm:col-span-2">
          {(p) => <input {...p} name="alert.webhook_url" type="url" autoComplete="off" spellCheck={false} placeholder="https://hooks.example.com/hostcheck" value={form.webhookUrl} onChange={(e) => set("webhookUrl", e.target.value)} />}
        </Field>
        <Field label="Status page slug" field="status_slug" errors={errors} hint="Shown read-only at /status/<slug>; empty: not shown" className="sm:col-span-2">
          {(p) => <input {...p} name="status_slug" autoComplete="off" spellCheck={false} placeholder="acme" value={form.statusSlug} onChange={(e) => set("statusSlug", e.target.value)} />}
        </Field>
      </Options>

      <div className="flex items-center gap-3">
        <button
          type="submit"
          disabled={mutation.isPending}
          className="rounded-md bg-sky-700 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-sky-800 focus:outline-none focus-visible:ring-2 focus-visible:ring-sky-400 focus-visible:ring-offset-2 disabled:opacity-60"
        >
          {mutation.isPending ? "Creating…" : "Create monitor"}
        </button>
      </div>
    </form>
  );
}

/** After create: the webhook secret, this once, with a copy button. */
function Created({ monitor }: { monitor: Monitor }) {
  const [copied, setCopied] = useState<"" | "yes" | "no">("");
  const secretRef = useRef<HTMLInputElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(monitor.webhookSecret);
      setCopied("yes");
    } catch {
      // No clipboard (an insecure origin, a denied permission): select it for a manual copy.
      secretRef.current?.select();
      setCopied("no");
    }
  };
  return (
    <div className="space-y-3" data-testid="monitor-created">
      <p className="text-sm">
        Monitor <strong>{monitor.name}</strong> created.
      </p>
      <div className="rounded-md border border-amber-200 bg-amber-50 p-3 text-sm text-amber-900">
        <label htmlFor="webhook-secret" className="font-medium">Webhook secret</label>
        <p className="mt-1">
          Webhooks are signed with it (<code>X-Hostcheck-Signature</code>: HMAC-SHA256). It is shown now only: copy it to
          your receiver.
        </p>
        <div className="mt-2 flex gap-2">
          <input
            id="webhook-secret"
            ref={secretRef}
            readOnly
            value={monitor.webhookSecret}
            onFocus={(e) => e.target.select()}
            className="w-full rounded border border-amber-300 bg-white px-2 py-1 font-mono text-xs"
            data-testid="webhook-secret"
          />
          <button type="button" onClick={() => void copy()} className="rounded bg-amber-600 px-3 py-1 text-white hover:bg-amber-700">
            Copy
          </button>
        </div>
        {copied === "yes" && <p className="mt-1 text-xs" role="status">Copied.</p>}
        {copied === "no" && <p className="mt-1 text-xs" role="status">Could not copy: it is selected, copy it by hand.</p>}
      </div>
      <Link to={`/monitors/${monitor.monitorId}`} className="inline-block rounded-md bg-sky-700 px-4 py-2 text-sm font-semibold text-white hover:bg-sky-800">
        Open the monitor
      </Link>
    </div>
  );
}
