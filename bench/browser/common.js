// Shared by both benchmark pages, so they are measured the same way. Query: ?mock=<mock Tiledesk base URL>
// &project=<project id>&delay=<loader delay, ms>&token_delay=<token endpoint delay, ms>.
const params = new URLSearchParams(location.search);
const mock = params.get("mock");

export const projectId = params.get("project");
export const widgetUrl = `${mock}/widget/launch.js?delay_ms=${Number(params.get("delay") || 0)}`;
export const tokenUrl = `${mock}/test-site/auth?user=bench&delay_ms=${Number(params.get("token_delay") || 0)}`;
// The stand-in boots at once (the real widget waits for the first interaction or 5 s: the same for both pages).
export const settings = { apiUrl: `${mock}/api/`, fakeBootDelayMs: 0 };

// Both pages start after the window's load event, with no stored widget session.
export function loaded() {
  localStorage.clear();
  return new Promise((resolve) => {
    if (document.readyState === "complete") resolve();
    else window.addEventListener("load", () => resolve(), { once: true });
  });
}

// Resolves with performance.now() when the widget is visible and signed in as a user.
export function widgetShown() {
  return new Promise((resolve) => {
    const check = () => {
      const root = document.getElementById("tiledeskdiv");
      if (root && root.style.display === "block" && root.getAttribute("data-user-id")) {
        observer.disconnect();
        resolve(performance.now());
      }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.documentElement, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ["style", "data-user-id"],
    });
  });
}

// What the driver awaits: window.benchDone, resolved with the result (or with { error }).
let done;
window.benchDone = new Promise((resolve) => {
  done = resolve;
});

export function report(result) {
  done(result);
}

export function fail(error) {
  done({ error: String(error && error.message ? error.message : error) });
}

// Hand-written JavaScript in the order of Tiledesk's tutorial: fetch the token, then the standard snippet with the
// sign-in queued (replayed at boot) and `show` on `online`. `extraSettings` are merged into tiledeskSettings.
export async function tutorialSignIn(tokenUrl, projectId, loaderUrl, extraSettings) {
  const response = await fetch(tokenUrl, { method: "POST" });
  if (!response.ok) throw new Error(`token endpoint: ${response.status}`);
  const { token } = await response.json();
  window.tiledeskSettings = { projectid: projectId, autoStart: false, ...extraSettings };
  window.Tiledesk = function () {
    window.Tiledesk.q.push(arguments);
  };
  window.Tiledesk.q = [];
  window.Tiledesk("onAuthStateChanged", (event) => {
    if (event.detail.isLogged && event.detail.event === "online") window.Tiledesk("show");
  });
  window.Tiledesk("signInWithCustomToken", token);
  const script = document.createElement("script");
  script.id = "tiledesk-jssdk";
  script.async = true;
  script.src = loaderUrl;
  document.head.appendChild(script);
}
