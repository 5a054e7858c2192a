// The API key a person pasted (Settings in the header): kept in this browser's localStorage and
// sent as `authorization: Bearer <key>` on every gRPC-Web call. Without one the UI is anonymous
// (checks count against the client IP's limit; "your checks" are this IP's last 24 hours).
import { useSyncExternalStore } from "react";

const STORAGE_KEY = "hostcheck.apiKey";
const listeners = new Set<() => void>();

export function getApiKey(): string {
  try {
    return window.localStorage.getItem(STORAGE_KEY) ?? "";
  } catch {
    return ""; // storage disabled: anonymous
  }
}

export function setApiKey(key: string): void {
  const trimmed = key.trim();
  if (trimmed) window.localStorage.setItem(STORAGE_KEY, trimmed);
  else window.localStorage.removeItem(STORAGE_KEY);
  listeners.forEach((notify) => notify());
}

function subscribe(notify: () => void): () => void {
  listeners.add(notify);
  const onStorage = (e: StorageEvent) => e.key === STORAGE_KEY && notify();
  window.addEventListener("storage", onStorage); // another tab changed it
  return () => {
    listeners.delete(notify);
    window.removeEventListener("storage", onStorage);
  };
}

export function useApiKey(): string {
  return useSyncExternalStore(subscribe, getApiKey);
}
