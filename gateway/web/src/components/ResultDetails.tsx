// Details of one task: what every task has (agent, error, times), its type's own view of the typed
// result (from the type's module in src/checks/), and the result data as the REST API shows it.
import { toJson } from "@bufbuild/protobuf";
import { checkTypeModule, resultOf, type CheckTypeModule } from "../checks";
import { ResultDataSchema, type CheckTask, type ResultData } from "../gen/hostcheck/v1/checks_pb";
import { formatTime } from "../lib/format";
import { Facts } from "./details";

export function ResultDetails({ task }: { task: CheckTask }) {
  const result = task.result;
  const module = checkTypeModule(task.checkType);
  return (
    <div className="space-y-4 text-sm">
      <Facts
        facts={[
          ["Agent", task.agentName || task.agentId],
          ["Reason", task.reason],
          ["Error", result?.error && `${result.error}${result.errorCode ? ` (${result.errorCode})` : ""}`],
          ["Started", result && formatTime(result.startedAt)],
          ["Late", result?.late && "arrived after the task timed out"],
        ]}
      />
      {!result && <p className="text-slate-500">No result yet.</p>}
      {module && <TypeDetails module={module} data={result?.data} />}
      {result?.data?.result.case && <RawData data={result.data} />}
    </div>
  );
}

function TypeDetails({ module, data }: { module: CheckTypeModule; data: ResultData | undefined }) {
  const value = resultOf(module, data);
  if (!value) return null;
  const Details = module.Details;
  return <Details result={value} />;
}

/** The data as REST and grpcurl print it: snake_case names, zero values included (as Envoy's transcoder does). */
function RawData({ data }: { data: ResultData }) {
  const json = toJson(ResultDataSchema, data, { useProtoFieldName: true, alwaysEmitImplicit: true });
  return (
    <details>
      <summary className="cursor-pointer text-slate-600">Raw data (JSON)</summary>
      <pre className="mt-2 max-h-80 overflow-auto rounded bg-slate-900 p-3 text-xs text-slate-100">{JSON.stringify(json, null, 2)}</pre>
    </details>
  );
}
