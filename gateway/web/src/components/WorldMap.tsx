// A world map of agents (on /agents) and of a check's outcome per agent (on /results/{id}).
// Drawn as SVG with d3-geo from Natural Earth's 1:110m countries shipped in the world-atlas npm
// package: inside the built page, so no tile server (nothing outside this machine is reachable).
import { useQuery } from "@tanstack/react-query";
import { geoEqualEarth, geoGraticule10, geoPath } from "d3-geo";
import type { FeatureCollection, Geometry } from "geojson";
import { useMemo } from "react";
import { feature, mesh } from "topojson-client";
import type { GeometryCollection, Topology } from "topojson-specification";
import countries110m from "world-atlas/countries-110m.json";
import type { Agent } from "../gen/hostcheck/v1/agents_pb";
import type { CheckTask } from "../gen/hostcheck/v1/checks_pb";
import { registry } from "../lib/api";

const WIDTH = 960;
const HEIGHT = 468;

/** A point's colour says its outcome; the legend and the point's title say it in words. */
export type MapOutcome = "online" | "offline" | "success" | "failed" | "partial" | "waiting";

const OUTCOME: Record<MapOutcome, { fill: string; words: string }> = {
  online: { fill: "fill-emerald-500", words: "online" },
  offline: { fill: "fill-slate-400", words: "offline" },
  success: { fill: "fill-emerald-500", words: "succeeded" },
  failed: { fill: "fill-rose-500", words: "failed" },
  partial: { fill: "fill-amber-500", words: "some failed" },
  waiting: { fill: "fill-sky-400", words: "waiting" },
};

export type MapPoint = {
  id: string;
  name: string;
  latitude: number;
  longitude: number;
  outcome: MapOutcome;
  /** One line under the name in the point's tooltip, e.g. "tcp ok · http failed". */
  detail?: string;
};

type Drawn = { land: string; borders: string; graticule: string; sphere: string };

// The projection and the country shapes are the same for every map: computed once.
const projection = geoEqualEarth().fitSize([WIDTH, HEIGHT], { type: "Sphere" });
let drawn: Drawn | undefined;
function basemap(): Drawn {
  if (!drawn) {
    const topo = countries110m as unknown as Topology<{ countries: GeometryCollection; land: GeometryCollection }>;
    const path = geoPath(projection);
    const land = feature(topo, topo.objects.land) as unknown as FeatureCollection<Geometry>;
    drawn = {
      land: path(land) ?? "",
      borders: path(mesh(topo, topo.objects.countries, (a, b) => a !== b)) ?? "",
      graticule: path(geoGraticule10()) ?? "",
      sphere: path({ type: "Sphere" }) ?? "",
    };
  }
  return drawn;
}

export function WorldMap({ points, label, missing = 0 }: { points: MapPoint[]; label: string; missing?: number }) {
  const map = useMemo(basemap, []);
  const placed = points
    .map((p) => ({ p, xy: projection([p.longitude, p.latitude]) }))
    .filter((d): d is { p: MapPoint; xy: [number, number] } => d.xy !== null);
  const outcomes = [...new Set(placed.map((d) => d.p.outcome))];
  return (
    <figure data-testid="world-map">
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} className="mx-auto h-auto w-full max-w-3xl" role="img" aria-label={label}>
        <path d={map.sphere} className="fill-sky-50" />
        <path d={map.graticule} className="fill-none stroke-slate-200" strokeWidth={0.5} />
        <path d={map.land} className="fill-slate-200" />
        <path d={map.borders} className="fill-none stroke-white" strokeWidth={0.5} />
        {placed.map(({ p, xy: [x, y] }) => (
          <g key={p.id} data-testid="map-point" data-agent-id={p.id} data-outcome={p.outcome} transform={`translate(${x},${y})`}>
            <title>{`${p.name}: ${OUTCOME[p.outcome].words}${p.detail ? ` · ${p.detail}` : ""}`}</title>
            <circle r={11} className={`${OUTCOME[p.outcome].fill} opacity-25`} />
            <circle r={6} className={`${OUTCOME[p.outcome].fill} stroke-white`} strokeWidth={1.5} />
            <text x={10} y={4} className="fill-slate-700 text-[13px]" paintOrder="stroke" stroke="white" strokeWidth={3}>
              {p.name}
            </text>
          </g>
        ))}
      </svg>
      <figcaption className="mt-1 flex flex-wrap gap-x-4 gap-y-1 text-xs text-slate-500">
        {outcomes.map((o) => (
          <span key={o} className="inline-flex items-center gap-1">
            <svg width="10" height="10" aria-hidden="true"><circle cx="5" cy="5" r="5" className={OUTCOME[o].fill} /></svg>
            {OUTCOME[o].words}
          </span>
        ))}
        {missing > 0 && (
          <span data-testid="map-missing">
            {missing} agent{missing === 1 ? "" : "s"} without coordinates not shown (HOSTCHECK_LATITUDE, HOSTCHECK_LONGITUDE)
          </span>
        )}
      </figcaption>
    </figure>
  );
}

function hasCoordinates(a: Agent): a is Agent & { latitude: number; longitude: number } {
  return a.latitude !== undefined && a.longitude !== undefined;
}

/** The agents of ListAgents on the map, coloured by online/offline (revoked ones are left out). */
export function AgentsMap({ agents }: { agents: Agent[] }) {
  const shown = agents.filter((a) => a.status !== "revoked");
  const points = shown.filter(hasCoordinates).map((a) => ({
    id: a.agentId,
    name: a.name,
    latitude: a.latitude,
    longitude: a.longitude,
    outcome: (a.status === "online" ? "online" : "offline") as MapOutcome,
    detail: a.location || undefined,
  }));
  return <WorldMap points={points} missing={shown.length - points.length} label={`Map of ${points.length} agents`} />;
}

/** One point per agent of a check: green when all its probes succeeded, red when none, amber in between. */
function agentOutcome(tasks: CheckTask[]): MapOutcome {
  if (tasks.some((t) => t.status === "pending" || t.status === "running")) return "waiting";
  const ok = tasks.filter((t) => t.status === "completed" && t.result?.success).length;
  return ok === tasks.length ? "success" : ok === 0 ? "failed" : "partial";
}

function taskWords(t: CheckTask): string {
  if (t.status === "completed" && t.result) return `${t.checkType} ${t.result.success ? "ok" : t.result.errorCode || "failed"}`;
  return `${t.checkType} ${t.status.replace("_", " ")}`;
}

/** A check's tasks on the map, placed by their agents' coordinates (from ListAgents). */
export function ResultsMap({ tasks }: { tasks: CheckTask[] }) {
  const agents = useQuery({
    queryKey: ["agents"],
    queryFn: ({ signal }) => registry.listAgents({}, { signal }),
    staleTime: 30_000,
  });
  const byAgent = new Map<string, CheckTask[]>();
  for (const t of tasks) byAgent.set(t.agentId, [...(byAgent.get(t.agentId) ?? []), t]);
  const where = new Map((agents.data?.agents ?? []).filter(hasCoordinates).map((a) => [a.agentId, a]));
  const points: MapPoint[] = [];
  for (const [agentId, own] of byAgent) {
    const a = where.get(agentId);
    if (!a) continue;
    points.push({
      id: agentId,
      name: own[0].agentName || a.name,
      latitude: a.latitude,
      longitude: a.longitude,
      outcome: agentOutcome(own),
      detail: own.map(taskWords).join(" · "),
    });
  }
  const missing = agents.data ? byAgent.size - points.length : 0;
  return <WorldMap points={points} missing={missing} label={`Map of the check's ${points.length} agents by outcome`} />;
}
