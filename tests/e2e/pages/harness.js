// What the end-to-end tests call through WebDriver: the module's API, its outcomes as plain data, its states.
import init, { TiledeskAuth } from "./pkg/tiledesk_auth_web.js";

const ready = init();

// A Promise's outcome as plain data: {state} or {error: {code, message}}.
function settle(promise) {
  return promise.then(
    (state) => ({ state }),
    (error) => ({ error: { code: error.code, message: error.message } }),
  );
}

window.states = [];
window.harness = {
  ready,
  async create(options) {
    await ready;
    if (window.auth) window.auth.free();
    window.auth = new TiledeskAuth(options);
    window.auth.onStateChange((state) => window.states.push(state));
  },
  signIn: () => settle(window.auth.signIn()),
  signInWith: (options) => settle(window.auth.signIn(options)),
  signOut: () => settle(window.auth.signOut()),
  // Starts a sign-in without waiting for it; `pending` settles with its outcome.
  startSignIn() {
    window.pending = settle(window.auth.signIn());
  },
  free() {
    window.auth.free();
    window.auth = null;
  },
  // A page that starts a sign-in and keeps no reference to the object: its states are recorded, `collected` turns
  // true once the garbage collector took the object, and `pending` settles with the sign-in's outcome.
  async startUnreferenced(options) {
    await ready;
    window.collected = false;
    const registry = new FinalizationRegistry(() => { window.collected = true; });
    window.registry = registry;
    (() => {
      const auth = new TiledeskAuth(options);
      auth.onStateChange((state) => window.states.push(state));
      registry.register(auth, "auth");
      window.pending = settle(auth.signIn());
    })();
  },
};
