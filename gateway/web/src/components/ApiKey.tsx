import { useState } from "react";
import { setApiKey, useApiKey } from "../lib/apikey";

/** The header's place to paste an API key (kept in this browser) or forget it. */
export function ApiKeyControl() {
  const key = useApiKey();
  const [open, setOpen] = useState(false);
  const [draft, setDraft] = useState("");

  const save = (e: React.FormEvent) => {
    e.preventDefault();
    setApiKey(draft);
    setDraft("");
    setOpen(false);
  };

  return (
    <div className="relative ml-auto">
      <button
        type="button"
        onClick={() => setOpen(!open)}
        aria-expanded={open}
        className="rounded px-3 py-1.5 text-sm text-slate-200 hover:bg-slate-700 hover:text-white focus:outline-none focus-visible:ring-2 focus-visible:ring-sky-400"
        data-testid="api-key-button"
      >
        {key ? `API key …${key.slice(-4)}` : "Anonymous"}
      </button>
      {open && (
        <form
          onSubmit={save}
          className="absolute right-0 z-10 mt-2 w-80 rounded border border-slate-200 bg-white p-3 text-sm shadow-lg"
          aria-label="API key settings"
        >
          <label htmlFor="api-key" className="block font-medium text-slate-700">
            API key
          </label>
          <p className="mt-1 text-xs text-slate-500">
            Kept in this browser only. With a key, checks count against its quota and only its checks are
            listed; without one, against your IP's.
          </p>
          <input
            id="api-key"
            type="password"
            autoComplete="off"
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            placeholder={key ? "paste a new key" : "hck_..."}
            className="mt-2 w-full rounded border border-slate-300 px-2 py-1 font-mono"
          />
          <div className="mt-2 flex gap-2">
            <button type="submit" className="rounded bg-sky-600 px-3 py-1 text-white hover:bg-sky-700">
              Save
            </button>
            {key && (
              <button
                type="button"
                onClick={() => {
                  setApiKey("");
                  setOpen(false);
                }}
                className="rounded px-3 py-1 text-slate-600 hover:bg-slate-100"
              >
                Forget key
              </button>
            )}
          </div>
        </form>
      )}
    </div>
  );
}
