import { NavLink, Outlet } from "react-router";
import { ApiKeyControl } from "./ApiKey";

const link = ({ isActive }: { isActive: boolean }) =>
  `rounded px-3 py-1.5 text-sm font-medium focus:outline-none focus-visible:ring-2 focus-visible:ring-sky-400 ${
    isActive ? "bg-slate-700 text-white" : "text-slate-200 hover:bg-slate-700 hover:text-white"
  }`;

export function Layout() {
  return (
    <div className="min-h-screen">
      <header className="bg-slate-800">
        <nav className="mx-auto flex max-w-6xl flex-wrap items-center gap-2 px-4 py-3" aria-label="Main">
          <NavLink to="/" className="mr-4 text-lg font-semibold text-white" end>
            Host Checker
          </NavLink>
          <NavLink to="/" className={link} end>
            Dashboard
          </NavLink>
          <NavLink to="/agents" className={link}>
            Agents
          </NavLink>
          <NavLink to="/monitors" className={link}>
            Monitors
          </NavLink>
          <ApiKeyControl />
        </nav>
      </header>
      <main className="mx-auto max-w-6xl px-4 py-6">
        <Outlet />
      </main>
    </div>
  );
}
