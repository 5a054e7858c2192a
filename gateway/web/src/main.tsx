import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Route, Routes } from "react-router";
import { Layout } from "./components/Layout";
import "./index.css";
import { AgentsPage } from "./pages/Agents";
import { Dashboard } from "./pages/Dashboard";
import { MonitorPage } from "./pages/MonitorsDetail";
import { NewMonitorPage } from "./pages/MonitorsForm";
import { MonitorsPage } from "./pages/Monitors";
import { NotFoundPage } from "./pages/NotFound";
import { ResultsPage } from "./pages/Results";
import { StatusPage } from "./pages/StatusPage";

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: true } },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <Routes>
          <Route element={<Layout />}>
            <Route index element={<Dashboard />} />
            <Route path="results/:checkId" element={<ResultsPage />} />
            <Route path="agents" element={<AgentsPage />} />
            <Route path="monitors" element={<MonitorsPage />} />
            <Route path="monitors/new" element={<NewMonitorPage />} />
            <Route path="monitors/:monitorId" element={<MonitorPage />} />
            <Route path="*" element={<NotFoundPage />} />
          </Route>
          {/* Public and read-only: no header, no API key. */}
          <Route path="status/:slug" element={<StatusPage />} />
        </Routes>
      </BrowserRouter>
    </QueryClientProvider>
  </StrictMode>,
);
