import { Link } from "react-router";

export function NotFoundPage() {
  return (
    <div className="space-y-2">
      <h1 className="text-xl font-semibold">Page not found</h1>
      <p className="text-sm text-slate-600">
        There is nothing here. <Link to="/" className="text-sky-700 underline">Go to the dashboard</Link>.
      </p>
    </div>
  );
}
