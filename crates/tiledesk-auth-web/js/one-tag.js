// The one-tag entry (`tiledesk-auth.js`): `cargo xtask pkg` appends this to the module's JS glue, whose
// `export default` it replaces, so that the tag's `integrity` covers the glue and this code alike. The WebAssembly
// is fetched with an integrity hash of its own (written in below by `cargo xtask pkg`): a tampered file does not
// start. Markers the build replaces: __TILEDESK_AUTH_WASM_INTEGRITY__.
//
// <script type="module" src=".../tiledesk-auth.js" integrity="sha384-..." crossorigin="anonymous"
//         data-project-id="..." data-auth-url="https://auth.example.com/auth"></script>
//
// signs the site's visitor in on every page load (the session bridge: the service asks the site's own login),
// and when the site says nobody is signed in, leaves no earlier visitor's chat behind (the stored session is
// cleared before the widget boots) and keeps the widget hidden or anonymous, as `data-on-failure` says. A page that
// wants control sets `data-auto-start="false"` and imports `TiledeskAuth` and `ready` from the same URL.

/** Resolves once the module can be used; rejects when its WebAssembly did not load or failed its integrity check. */
export const ready = __wbg_init({
  module_or_path: fetch(new URL("tiledesk_auth_web_bg.wasm", import.meta.url), {
    integrity: "__TILEDESK_AUTH_WASM_INTEGRITY__",
    credentials: "omit",
  }),
}).then(() => undefined);

/** The same Promise as `ready`: the module is loaded once, with its integrity checked. */
export default function init() {
  return ready;
}

/** The options the tag's `data-` attributes may set, and which of them are "true" or "false". */
const tiledeskAuthOptionNames = ["projectId", "authUrl", "widgetUrl", "onFailure", "boot", "timeoutMs"];
const tiledeskAuthFlags = ["refresh", "syncTabs", "withCredentials"];

function tiledeskAuthReport(code, message) {
  console.error(`tiledesk-auth: ${message} (${code})`);
  document.dispatchEvent(new CustomEvent("tiledesk-auth:error", { detail: { code, message } }));
}

/** `data-with-credentials` for the dataset key `withCredentials`. */
function tiledeskAuthAttribute(key) {
  return `data-${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

function tiledeskAuthBadOptions(message) {
  return Object.assign(new Error(message), { code: "bad_options" });
}

/** `new TiledeskAuth()`'s options from the tag's `data-` attributes; an unknown one is an error, as a key is. */
function tiledeskAuthOptions(data) {
  const options = { authUrl: new URL("../../auth", import.meta.url).href };
  for (const [key, value] of Object.entries(data)) {
    if (key === "autoStart") continue;
    if (tiledeskAuthFlags.includes(key)) {
      if (value !== "true" && value !== "false") {
        throw tiledeskAuthBadOptions(`${tiledeskAuthAttribute(key)} is "true" or "false"`);
      }
      options[key] = value === "true";
    } else if (tiledeskAuthOptionNames.includes(key)) {
      options[key] = key === "timeoutMs" ? Number(value) : value;
    } else {
      throw tiledeskAuthBadOptions(`unknown attribute ${tiledeskAuthAttribute(key)} on the tiledesk-auth tag`);
    }
  }
  return options;
}

/** The page's `<script>` element that loaded this file, if one did (an `import` from another script is none). */
function tiledeskAuthTag() {
  for (const script of document.querySelectorAll("script[src]")) {
    if (script.src === import.meta.url) return script;
  }
  return null;
}

/** One sign-in for the page's life; kept here, so the garbage collector never ends it. */
let tiledeskAuthStarted = null;

async function tiledeskAuthStart(data) {
  try {
    await ready;
  } catch (err) {
    // Nothing of the module runs: an earlier visitor's stored chat session must not come back on its own.
    if (data.projectId) {
      for (const key of ["tiledeskToken", "currentUser"]) {
        try {
          localStorage.removeItem(`widget_sv5_${data.projectId}_${key}`);
        } catch (_) {}
      }
    }
    // Hidden, as the module would have kept it (and no anonymous sign-in of the widget's own).
    if (data.onFailure !== "anonymous") {
      if (window.tiledeskSettings && typeof window.tiledeskSettings === "object") window.tiledeskSettings.autoStart = false;
      if (typeof window.Tiledesk === "function") window.Tiledesk("hide");
    }
    tiledeskAuthReport("module_load", `the module's WebAssembly did not load or failed its integrity check: ${err}`);
    return null;
  }
  let auth;
  try {
    auth = new TiledeskAuth(tiledeskAuthOptions(data));
  } catch (err) {
    tiledeskAuthReport(err.code || "bad_options", err.message);
    return null;
  }
  auth.onStateChange((state) => document.dispatchEvent(new CustomEvent("tiledesk-auth:state", { detail: state })));
  try {
    await auth.signIn();
  } catch (err) {
    // Nobody signed in on the site is the ordinary case of a visitor who has no account: not an error.
    if (err.code !== "auth_rejected" && err.code !== "aborted") tiledeskAuthReport(err.code, err.message);
  }
  return auth;
}

if (typeof document !== "undefined") {
  const tag = tiledeskAuthTag();
  if (tag && tag.dataset.autoStart !== "false") tiledeskAuthStarted = tiledeskAuthStart({ ...tag.dataset });
}

/** The one-tag sign-in's `TiledeskAuth` object (null without a tag, with `data-auto-start="false"`, or when it
 *  could not start), once it exists. */
export function started() {
  return tiledeskAuthStarted || Promise.resolve(null);
}
