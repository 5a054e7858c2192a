// The check types the UI knows: every module next to this file (./<type>.tsx, default export),
// in their `order`. Adding a type adds a file here and touches nothing else in the UI.
import type { CheckResult, ResultData } from "../gen/hostcheck/v1/checks_pb";
import type { CheckTypeModule, CheckTypeName, CreateCheckInit, OptionsReader, ResultOf } from "./types";

export type { CheckTypeModule, CheckTypeName, CreateCheckInit, OptionField, OptionsReader, ResultOf } from "./types";

// The glob's type parameter is an assertion: each module checks itself through defineCheckType.
const found = import.meta.glob<CheckTypeModule>("./*.tsx", { eager: true, import: "default" });

function collect(modules: Record<string, CheckTypeModule>): readonly CheckTypeModule[] {
  const list = Object.entries(modules).map(([path, m]) => {
    if (!m?.name) throw new Error(`${path}: a check-type module's default export is its CheckTypeModule`);
    return m;
  });
  const names = new Set(list.map((m) => m.name));
  if (names.size !== list.length) throw new Error("two check-type modules share a name");
  return list.sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
}

export const CHECK_TYPES: readonly CheckTypeModule[] = collect(found);

const BY_NAME = new Map<string, CheckTypeModule>(CHECK_TYPES.map((m) => [m.name, m]));

/** The module of a type name from the server; undefined for a type this UI does not know. */
export function checkTypeModule(name: string): CheckTypeModule | undefined {
  return BY_NAME.get(name);
}

/** The module's own result in `data`, typed; undefined when `data` holds another case or none. */
export function resultOf<N extends CheckTypeName, K extends string>(
  module: CheckTypeModule<N, K>,
  data: ResultData | undefined,
): ResultOf<N> | undefined {
  const result = data?.result;
  if (!result || result.case !== module.name) return undefined;
  // The oneof's case names the type, so this case carries the module's own result message.
  return result.value as ResultOf<N>;
}

/** Sets the module's options field of the create request from its inputs. */
export function addOptions<N extends CheckTypeName, K extends string>(
  init: CreateCheckInit,
  module: CheckTypeModule<N, K>,
  read: OptionsReader<K>,
): void {
  init[module.name] = module.form.toOptions(read);
}

/** The server's field path of an option input, as its violations name it: "<type>.<key>". */
export function optionPath(module: CheckTypeModule, key: string): string {
  return `${module.name}.${key}`;
}

/** Starting values of a module's inputs, by key. */
export function initialOptions(module: CheckTypeModule): Record<string, string> {
  return Object.fromEntries(module.form.fields.map((f) => [f.key, f.initial ?? f.choices?.[0] ?? ""]));
}

/** The table's one-line summary of a result's data; "" when the type or its data is unknown. */
export function summaryOf(checkType: string, result: CheckResult): string {
  const module = checkTypeModule(checkType);
  const value = module && resultOf(module, result.data);
  return module && value ? module.summary(value) : "";
}

/** The latency to compare across agents: the type's own measure when it has one, else the probe's duration. */
export function latencyOf(checkType: string, result: CheckResult): number {
  const module = checkTypeModule(checkType);
  const value = module && resultOf(module, result.data);
  return (module && value && module.latency?.of(value)) ?? result.durationMs;
}

/** What latencyOf measures for a type, in words. */
export function latencyMeaning(checkType: string): string {
  return checkTypeModule(checkType)?.latency?.meaning ?? "probe duration";
}
