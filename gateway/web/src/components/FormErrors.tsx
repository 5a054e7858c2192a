// The summary above a form that the server (or the browser) refused: what was wrong, and the
// violations of fields the form has no input for (they can't be shown next to one).
export function FormErrors({
  errors,
  onForm,
  otherError,
  what,
}: {
  errors: Record<string, string[]>;
  onForm: Set<string>;
  otherError: string | null;
  what: string;
}) {
  const elsewhere = Object.entries(errors).filter(([k]) => !onForm.has(k));
  if (Object.keys(errors).length === 0 && !otherError) return null;
  return (
    <div role="alert" className="rounded-md border border-rose-200 bg-rose-50 p-3 text-sm text-rose-800">
      {otherError ?? `The ${what} was not created: fix the fields marked below.`}
      {elsewhere.length > 0 && (
        <ul className="mt-1 list-inside list-disc">
          {elsewhere.map(([k, msgs]) => (
            <li key={k}>
              <code>{k}</code>: {msgs.join("; ")}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
