// The package as a bundler sees it: Vite resolves the module's `.wasm` (its `new URL(..., import.meta.url)`) and
// emits it beside the bundle.
import init, { TiledeskAuth } from "tiledesk-auth";

const status = document.getElementById("status");
window.records = { states: [], error: null };

async function main() {
  // Which project, where the token endpoint is, who signs in: the deployment's, not the bundle's.
  const config = await fetch(new URL("config.json", document.baseURI)).then((r) => r.json());
  await init();
  const auth = new TiledeskAuth(config.options);
  auth.onStateChange((state) => {
    window.records.states.push(state);
    status.dataset.status = state.status;
    status.textContent = state.status === "authenticated" ? `Chat id ${state.userId}` : state.status;
  });
  await auth.signIn();
}

main().catch((err) => {
  window.records.error = { code: err.code || "failed", message: String(err.message || err) };
  status.textContent = `Could not sign in: ${window.records.error.message}`;
});
