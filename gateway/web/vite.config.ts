import tailwindcss from "@tailwindcss/vite";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";
import { viteSingleFile } from "vite-plugin-singlefile";

// One self-contained dist/index.html (scripts and styles inlined): Envoy serves it as a
// direct response for the UI's routes, so the UI needs no server of its own.
// `npm run dev` proxies the API to a running `hostcheck dev` (HOSTCHECK_API, default :8080).
declare const process: { env: Record<string, string | undefined> };
const api = process.env.HOSTCHECK_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react(), tailwindcss(), viteSingleFile()],
  build: { target: "es2022", chunkSizeWarningLimit: 2048 },
  server: {
    proxy: {
      "/hostcheck.v1.": { target: api, changeOrigin: true },
      "/api/": { target: api, changeOrigin: true },
    },
  },
});
