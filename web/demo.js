// The demo page's logic: the same calls a customer's page makes. Everything shown is set with textContent.
import init, { TiledeskAuth } from "./pkg/tiledesk_auth_web.js";

const $ = (id) => document.getElementById(id);

// Words a person understands, for each state and error code.
const STATUS = {
  idle: "Not signed in.",
  loading: "Signing you in to the chat…",
  authenticated: "Signed in to the chat.",
  anonymous: "Chatting anonymously.",
  signed_out: "Signed out.",
  error: "Could not sign you in to the chat.",
};
const ERRORS = {
  auth_rejected: "Wrong email or password.",
  auth_endpoint: "The sign-in service answered something unexpected. Please try again later.",
  network: "The sign-in service cannot be reached. Check your connection and try again.",
  timeout: "The chat took too long to answer. Please try again.",
  widget_load: "The chat could not be loaded (an ad blocker, perhaps).",
  sign_in_rejected: "The chat refused the sign-in. Please try again later.",
  bad_options: "This page is misconfigured.",
};

function render(state) {
  $("status").textContent = STATUS[state.status] || state.status;
  $("status").dataset.status = state.status;
  let detail = "";
  if (state.status === "authenticated") {
    const until = state.expiresAt ? new Date(state.expiresAt * 1000).toLocaleTimeString() : "";
    detail = `Chat id ${state.userId}` + (until ? `, session renewed before ${until}.` : ".");
  } else if (state.error) {
    detail = ERRORS[state.error.code] || state.error.message;
  }
  $("detail").textContent = detail;
  $("detail").dataset.code = state.error ? state.error.code : "";
  $("sign-out").hidden = state.status !== "authenticated" && state.status !== "anonymous";
  $("login").hidden = state.status === "authenticated" || state.status === "loading";
}

// The handlers are attached before anything is awaited; they wait for the module themselves.
const ready = (async () => {
  const config = await fetch("demo-config.json").then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
  await init();
  return config;
})();

let auth = null;

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const config = await ready;
  if (auth) auth.free();
  auth = new TiledeskAuth({
    projectId: config.projectId || "YOUR_TILEDESK_PROJECT_ID",
    authUrl: "/auth",
    credentials: { email: $("email").value, password: $("password").value },
    ...(config.widgetUrl ? { widgetUrl: config.widgetUrl } : {}),
    settings: config.settings || {},
  });
  auth.onStateChange(render);
  $("password").value = "";
  try {
    await auth.signIn();
  } catch (_) {
    // The state carries the error; render() has shown it.
  }
});

$("sign-out").addEventListener("click", async () => {
  if (auth) await auth.signOut();
});

ready.then(() => {
  $("sign-in").disabled = false;
});
