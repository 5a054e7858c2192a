// The shape of a check-type module (./<type>.tsx). Everything the UI knows of a type lives in
// its module; the pages read the list in ./index.ts and name no type themselves.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ComponentType } from "react";
import type { ResultData } from "../gen/hostcheck/v1/checks_pb";
import type { CreateCheckRequest, CreateCheckRequestSchema } from "../gen/hostcheck/v1/scheduler_pb";

type ResultCase = ResultData["result"];
/** Each case of the `ResultData.result` oneof: its name to its result message. */
type ResultByName = { [C in ResultCase as C["case"] extends string ? C["case"] : never]: C["value"] };

/** A check type's name: a case of the `ResultData.result` oneof (the protos list every type there). */
export type CheckTypeName = keyof ResultByName;

/** The typed result message of a type: the value of its oneof case. */
export type ResultOf<N extends CheckTypeName> = ResultByName[N];

export type CreateCheckInit = MessageInitShape<typeof CreateCheckRequestSchema>;

/** The options a type puts into the create request: the request field named like the type (the
 * compiler fails here when a type has a result in ResultData but no options field in the request). */
export type OptionsInit<N extends CheckTypeName> = NonNullable<CreateCheckInit[N]>;

type SnakeCase<S extends string> = S extends `${infer Head}${infer Tail}`
  ? `${Head extends Lowercase<Head> ? Head : `_${Lowercase<Head>}`}${SnakeCase<Tail>}`
  : S;

/** The proto names (snake_case) of the fields of a type's options message. */
export type OptionKey<N extends CheckTypeName> = SnakeCase<
  Exclude<keyof NonNullable<CreateCheckRequest[N]>, "$typeName" | "$unknown"> & string
>;

/** One input of a type's options. */
export type OptionField<K extends string> = {
  /** The options message's field name (snake_case, as in the proto). The server names the field
   * `<type>.<key>` in its violations, and the form shows them at this input. */
  key: K;
  label: string;
  hint?: string;
  placeholder?: string;
  /** A numeric keypad on phones. */
  numeric?: boolean;
  /** A select of these values instead of a text input. */
  choices?: readonly string[];
  /** The starting value; default the first choice, else empty. */
  initial?: string;
};

/** Reads the inputs of one type's options. A malformed number is recorded as an error at its
 * field (the request is then not sent) and read as undefined. */
export interface OptionsReader<K extends string> {
  /** The input, trimmed. */
  text(key: K): string;
  /** The input exactly as typed (a payload, where spaces count). */
  raw(key: K): string;
  /** A whole number; undefined when empty, so the server applies its default. */
  uint(key: K): number | undefined;
  /** Whole numbers separated by commas or spaces. */
  uints(key: K): number[];
}

/** What one check type gives the UI. Write one with `defineCheckType` (it infers N and K). */
export interface CheckTypeModule<N extends CheckTypeName = CheckTypeName, K extends string = string> {
  /** The type's name, as in `CreateCheckRequest.checks` and the `ResultData` case. */
  name: N;
  /** For people: the heading of the type's options. */
  label: string;
  /** Position in the form and the lists, ascending. */
  order: number;
  /** Ticked when the form opens. */
  checkedByDefault?: boolean;
  form: {
    fields: readonly OptionField<K>[];
    /** The options message of the create request, from the form's inputs. */
    toOptions(read: OptionsReader<K>): OptionsInit<NoInfer<N>>;
  };
  /** The type's part of the details panel; the panel adds the task's facts and the raw JSON. */
  Details: ComponentType<{ result: ResultOf<N> }>;
  /** One short line for the results table: the thing a person looks for first. */
  summary(result: ResultOf<N>): string;
  /** The latency a person compares across agents, when the type measures a network part of the
   * probe (a handshake, a round trip); without one the table shows the whole probe's duration. */
  latency?: {
    /** What the number is, for the chart's caption ("connect time"). */
    meaning: string;
    /** Undefined when the result did not measure it (a failed probe). */
    of(result: ResultOf<N>): number | undefined;
  };
}

/** Checks a module's object against the interface, inferring its type name and option keys
 * (each the proto name of a field of the type's options message). */
export function defineCheckType<N extends CheckTypeName, K extends OptionKey<N>>(module: CheckTypeModule<N, K>): CheckTypeModule<N, K> {
  return module;
}
