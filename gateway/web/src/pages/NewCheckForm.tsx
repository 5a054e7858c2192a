// The new-check form. The server validates; its field violations (google.rpc.BadRequest)
// are shown next to the inputs they name. Only shape is checked here (numbers are numbers).
import { create } from "@bufbuild/protobuf";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useRef, useState, type ReactNode } from "react";
import { useNavigate } from "react-router";
import { addOptions, CHECK_TYPES, initialOptions, optionPath, type CheckTypeModule, type CreateCheckInit, type OptionsReader } from "../checks";
import { describeError, fieldViolations, scheduler } from "../lib/api";
import { CreateCheckRequestSchema, type CreateCheckRequest } from "../gen/hostcheck/v1/scheduler_pb";
import { FormErrors } from "../components/FormErrors";

export type Form = {
  target: string;
  /** Ticked check types, by name. */
  checks: Record<string, boolean>;
  /** Each type's option inputs, by type name, then by the option's key. */
  options: Record<string, Record<string, string>>;
  regions: string;
  countries: string;
  labels: string;
  limit: string;
  /** Free-text places (AgentSelector.magic), comma separated: "Germany, AS7922, FR+AS12322". */
  from: string;
  continents: string;
  asns: string;
  excludeLabels: string;
  sameAs: string;
};

export const INITIAL: Form = {
  target: "",
  checks: Object.fromEntries(CHECK_TYPES.map((m) => [m.name, !!m.checkedByDefault])),
  options: Object.fromEntries(CHECK_TYPES.map((m) => [m.name, initialOptions(m)])),
  regions: "",
  countries: "",
  labels: "",
  limit: "",
  from: "",
  continents: "",
  asns: "",
  excludeLabels: "",
  sameAs: "",
};

/** Errors keyed by the server's field name, with list indexes dropped ("checks[1]" -> "checks"). */
export type Errors = Record<string, string[]>;

// Inputs on this form, by the server field they answer for; anything else is listed above the form.
export const FIELDS_ON_FORM = new Set([
  "target", "checks", "agents.regions", "agents.countries", "agents.labels", "agents.limit",
  "agents.magic", "agents.continents", "agents.asns", "agents.exclude_labels", "agents.same_as",
  ...CHECK_TYPES.flatMap((m) => m.form.fields.map((f) => optionPath(m, f.key))),
]);

function normalField(field: string): string {
  const f = field.replace(/\[\d+\]/g, "");
  // "options for '<type>' given but '<type>' is not in checks" names the bare type.
  return CHECK_TYPES.some((m) => m.name === f) ? "checks" : f;
}

export function addError(errors: Errors, field: string, message: string) {
  const key = normalField(field);
  (errors[key] ??= []).push(message);
}

function splitList(value: string): string[] {
  return value.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
}

/** "" -> undefined; digits -> number; anything else -> an error on `field`. */
export function parseUint(value: string, field: string, errors: Errors): number | undefined {
  const v = value.trim();
  if (!v) return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) > 4294967295) {
    addError(errors, field, "enter a whole number");
    return undefined;
  }
  return Number(v);
}

/** Reads one type's inputs; a malformed number becomes an error at its server field. */
function optionsReader(module: CheckTypeModule, values: Record<string, string>, errors: Errors): OptionsReader<string> {
  const raw = (key: string) => values[key] ?? "";
  return {
    raw,
    text: (key) => raw(key).trim(),
    uint: (key) => parseUint(raw(key), optionPath(module, key), errors),
    uints: (key) =>
      splitList(raw(key))
        .map((v) => parseUint(v, optionPath(module, key), errors))
        .filter((n): n is number => n !== undefined),
  };
}

export function buildRequest(form: Form): { request?: CreateCheckRequest; errors: Errors } {
  const errors: Errors = {};
  const chosen = CHECK_TYPES.filter((m) => form.checks[m.name]);
  const init: CreateCheckInit = { target: form.target.trim(), checks: chosen.map((m) => m.name) };
  // Options only for the chosen types: the server refuses options of a type not asked for.
  for (const m of chosen) addOptions(init, m, optionsReader(m, form.options[m.name] ?? {}, errors));
  const labelsOf = (value: string, field: string) => {
    const labels: Record<string, string> = {};
    for (const pair of splitList(value)) {
      const [k, ...rest] = pair.split("=");
      if (!k || rest.length === 0) addError(errors, field, `"${pair}" is not key=value`);
      else labels[k] = rest.join("=");
    }
    return labels;
  };
  init.agents = {
    regions: splitList(form.regions),
    countries: splitList(form.countries).map((c) => c.toUpperCase()),
    labels: labelsOf(form.labels, "agents.labels"),
    limit: parseUint(form.limit, "agents.limit", errors),
    // Places may hold spaces ("New York"): only commas separate them.
    magic: form.from.split(",").map((s) => s.trim()).filter(Boolean),
    continents: splitList(form.continents).map((c) => c.toUpperCase()),
    asns: splitList(form.asns)
      .map((a) => parseUint(a.replace(/^as/i, ""), "agents.asns", errors))
      .filter((n): n is number => n !== undefined),
    excludeLabels: labelsOf(form.excludeLabels, "agents.exclude_labels"),
    sameAs: form.sameAs.trim(),
  };
  if (Object.keys(errors).length) return { errors };
  return { request: create(CreateCheckRequestSchema, init), errors };
}

export const inputClass = (invalid: boolean) =>
  `block w-full rounded-md border bg-white px-3 py-2 text-sm shadow-sm focus:outline-none focus:ring-2 ${
    invalid ? "border-rose-400 focus:ring-rose-300" : "border-slate-300 focus:border-sky-500 focus:ring-sky-200"
  }`;

export function FieldErrors({ id, messages }: { id: string; messages?: string[] }) {
  if (!messages?.length) return null;
  return (
    <p id={id} className="mt-1 text-sm text-rose-700" data-field-error>
      {messages.join("; ")}
    </p>
  );
}

type FieldProps = {
  label: string;
  field: string;
  errors: Errors;
  hint?: string;
  className?: string;
  children: (props: { id: string; "aria-invalid": boolean; "aria-describedby"?: string; className: string; "data-field": string }) => ReactNode;
};

/** A label, an input (rendered by `children` with the right ids) and the server's messages for `field`. */
export function Field({ label, field, errors, hint, className, children }: FieldProps) {
  const id = useId();
  const messages = errors[field];
  const invalid = !!messages?.length;
  const describedBy = [hint ? `${id}-hint` : "", invalid ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className={className}>
      <label htmlFor={id} className="mb-1 block text-sm font-medium text-slate-700">
        {label}
      </label>
      {children({ id, "aria-invalid": invalid, "aria-describedby": describedBy, className: inputClass(invalid), "data-field": field })}
      {hint && (
        <p id={`${id}-hint`} className="mt-1 text-xs text-slate-500">
          {hint}
        </p>
      )}
      <FieldErrors id={`${id}-error`} messages={messages} />
    </div>
  );
}

export function NewCheckForm() {
  const [form, setForm] = useState<Form>(INITIAL);
  const [errors, setErrors] = useState<Errors>({});
  const formRef = useRef<HTMLFormElement>(null);
  const navigate = useNavigate();
  const queryClient = useQueryClient();

  // After the errors are rendered, focus the first field to fix (keyboard and screen-reader users land on it).
  const [focusRequest, setFocusRequest] = useState(0);
  const focusFirstError = () => setFocusRequest((n) => n + 1);
  useEffect(() => {
    if (focusRequest) formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [focusRequest]);

  const mutation = useMutation({
    mutationFn: (request: CreateCheckRequest) => scheduler.createCheck(request),
    onSuccess: (res) => {
      void queryClient.invalidateQueries({ queryKey: ["checks"] });
      navigate(`/results/${res.checkId}`);
    },
    onError: (err) => {
      const next: Errors = {};
      for (const v of fieldViolations(err)) addError(next, v.field, v.description);
      setErrors(next);
      focusFirstError();
    },
  });

  const onSubmit = (e: React.FormEvent) => {
    e.preventDefault();
    const { request, errors: local } = buildRequest(form);
    setErrors(local);
    if (!request) {
      focusFirstError();
      return;
    }
    mutation.mutate(request);
  };

  const hasFieldErrors = Object.keys(errors).length > 0;
  const otherError = mutation.isError && !hasFieldErrors ? describeError(mutation.error) : null;

  return (
    <form ref={formRef} onSubmit={onSubmit} noValidate aria-label="New check" className="space-y-5">
      <FormErrors errors={errors} onForm={FIELDS_ON_FORM} otherError={otherError} what="check" />

      <CheckSpecFields form={form} errors={errors} update={setForm} />

      <div className="flex items-center gap-3">
        <button
          type="submit"
          disabled={mutation.isPending}
          className="rounded-md bg-sky-700 px-4 py-2 text-sm font-semibold text-white shadow-sm hover:bg-sky-800 focus:outline-none focus-visible:ring-2 focus-visible:ring-sky-400 focus-visible:ring-offset-2 disabled:opacity-60"
        >
          {mutation.isPending ? "Starting…" : "Run check"}
        </button>
        {mutation.isPending && <span className="text-sm text-slate-500" role="status">Picking agents…</span>}
      </div>
    </form>
  );
}

/** What a check asks (target, types and their options, which agents): the new-check form's
 * inputs, shared with the monitor form (a monitor's runs are checks). */
export function CheckSpecFields({ form, errors, update }: { form: Form; errors: Errors; update: (change: (f: Form) => Form) => void }) {
  const set = <K extends keyof Form>(key: K, value: Form[K]) => update((f) => ({ ...f, [key]: value }));
  const toggle = (type: string) => update((f) => ({ ...f, checks: { ...f.checks, [type]: !f.checks[type] } }));
  const setOption = (type: string, key: string, value: string) =>
    update((f) => ({ ...f, options: { ...f.options, [type]: { ...f.options[type], [key]: value } } }));
  return (
    <>
      <Field label="Target" field="target" errors={errors} hint="Host name, IP address, host:port or URL.">
        {(p) => (
          <input
            {...p}
            name="target"
            type="text"
            autoComplete="off"
            autoCapitalize="off"
            spellCheck={false}
            placeholder="example.com or 203.0.113.5:443"
            value={form.target}
            onChange={(e) => set("target", e.target.value)}
          />
        )}
      </Field>

      <fieldset aria-describedby={errors.checks ? "checks-error" : undefined} data-field="checks">
        <legend className="mb-1 text-sm font-medium text-slate-700">Check types</legend>
        <div className="flex flex-wrap gap-2">
          {CHECK_TYPES.map(({ name }) => (
            <label
              key={name}
              className={`flex cursor-pointer items-center gap-2 rounded-md border px-3 py-1.5 text-sm has-[:focus-visible]:ring-2 has-[:focus-visible]:ring-sky-300 ${
                form.checks[name] ? "border-sky-500 bg-sky-50" : "border-slate-300 bg-white"
              }`}
            >
              <input
                type="checkbox"
                name="checks"
                value={name}
                checked={!!form.checks[name]}
                onChange={() => toggle(name)}
                aria-invalid={!!errors.checks}
                className="accent-sky-600"
              />
              {name}
            </label>
          ))}
        </div>
        <FieldErrors id="checks-error" messages={errors.checks} />
      </fieldset>

      {CHECK_TYPES.filter((m) => form.checks[m.name]).map((m) => (
        <Options key={m.name} title={m.label}>
          {m.form.fields.map((f) => {
            const field = optionPath(m, f.key);
            const value = form.options[m.name]?.[f.key] ?? "";
            const onChange = (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setOption(m.name, f.key, e.target.value);
            return (
              <Field key={f.key} label={f.label} field={field} errors={errors} hint={f.hint}>
                {(p) =>
                  f.choices ? (
                    <select {...p} name={field} value={value} onChange={onChange}>
                      {f.choices.map((c) => (
                        <option key={c}>{c}</option>
                      ))}
                    </select>
                  ) : (
                    <input {...p} name={field} inputMode={f.numeric ? "numeric" : undefined} placeholder={f.placeholder} value={value} onChange={onChange} />
                  )
                }
              </Field>
            );
          })}
        </Options>
      ))}

      <Options title="Agents" hint="Empty: any online agents, up to 10.">
        <Field label="From" field="agents.magic" errors={errors} hint="Any of, comma separated: continent, country, city, ASN, network; A+B: both">
          {(p) => <input {...p} name="agents.magic" placeholder="Germany, AS7922, FR+AS12322" value={form.from} onChange={(e) => set("from", e.target.value)} />}
        </Field>
        <Field label="Continents" field="agents.continents" errors={errors} hint="AF, AN, AS, EU, NA, OC, SA">
          {(p) => <input {...p} name="agents.continents" placeholder="EU" value={form.continents} onChange={(e) => set("continents", e.target.value)} />}
        </Field>
        <Field label="ASNs" field="agents.asns" errors={errors} hint="Any of, e.g. 3320, AS7922">
          {(p) => <input {...p} name="agents.asns" placeholder="3320" value={form.asns} onChange={(e) => set("asns", e.target.value)} />}
        </Field>
        <Field label="Regions" field="agents.regions" errors={errors} hint="Any of, comma separated">
          {(p) => <input {...p} name="agents.regions" placeholder="eu-west" value={form.regions} onChange={(e) => set("regions", e.target.value)} />}
        </Field>
        <Field label="Countries" field="agents.countries" errors={errors} hint="ISO codes, e.g. DE, US">
          {(p) => <input {...p} name="agents.countries" placeholder="DE" value={form.countries} onChange={(e) => set("countries", e.target.value)} />}
        </Field>
        <Field label="Labels" field="agents.labels" errors={errors} hint="All of, key=value">
          {(p) => <input {...p} name="agents.labels" placeholder="net=fiber" value={form.labels} onChange={(e) => set("labels", e.target.value)} />}
        </Field>
        <Field label="Not labels" field="agents.exclude_labels" errors={errors} hint="None of, key=value">
          {(p) => <input {...p} name="agents.exclude_labels" placeholder="tier=test" value={form.excludeLabels} onChange={(e) => set("excludeLabels", e.target.value)} />}
        </Field>
        <Field label="Same agents as check" field="agents.same_as" errors={errors} hint="An earlier check's id">
          {(p) => <input {...p} name="agents.same_as" placeholder="check id" value={form.sameAs} onChange={(e) => set("sameAs", e.target.value)} />}
        </Field>
        <Field label="How many agents" field="agents.limit" errors={errors} hint="1-1000. Default 10">
          {(p) => <input {...p} name="agents.limit" inputMode="numeric" placeholder="10" value={form.limit} onChange={(e) => set("limit", e.target.value)} />}
        </Field>
      </Options>
    </>
  );
}

export function Options({ title, hint, children }: { title: string; hint?: string; children: ReactNode }) {
  return (
    <fieldset className="rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-semibold text-slate-700">{title}</legend>
      {hint && <p className="mb-2 text-xs text-slate-500">{hint}</p>}
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-2 lg:grid-cols-4">{children}</div>
    </fieldset>
  );
}
