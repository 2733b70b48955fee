//! `tiledesk-auth-web`: signs a site's logged-in visitor into the Tiledesk chat widget, with no race against
//! the loader and no dead session.
//!
//! ```js
//! import init, { TiledeskAuth } from "./pkg/tiledesk_auth_web.js";
//! await init();
//! const auth = new TiledeskAuth({ projectId: "64f0...", authUrl: "/auth" });
//! auth.onStateChange((s) => console.log(s.status, s.userId, s.expiresAt, s.error));
//! await auth.signIn({ credentials: { email, password } }); // resolves once the widget shows this visitor
//! await auth.signIn({ credentials: other });  // another visitor: the first is logged out of the widget first
//! await auth.signOut();  // logout, clear the widget's stored session, hide; every other tab of the site too
//! ```
//!
//! The sequence follows `docs/tiledesk.md`: settings with `autoStart: false`, `hide` queued, the token fetched
//! in parallel with the loader, the loader made to boot at once, `signInWithCustomToken` called directly after
//! `onBeforeInit` so its Promise is awaited, the widget shown once it reports *this* visitor online, the stored
//! session removed before boot, and a fresh token signed in before the current one expires or whenever the widget
//! loses the session.
//!
//! This file is the module's JavaScript surface; the state machine behind it is `machine.rs`, the widget's side
//! `widget.rs`.

#![deny(missing_docs)]

/// lol_alloc's free-list allocator (sorted by address, freed neighbours coalesced) instead of Rust's dlmalloc: 3.1 KiB
/// less on the wire for a module that allocates little and on one thread. The locked variant: the workspace allows
/// no `unsafe`, which the single-threaded one needs.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

mod error;
mod machine;
mod oneshot;
mod options;
mod race;
mod session;
mod state;
mod tabs;
mod token;
mod widget;

use std::rc::Rc;

use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;

use crate::machine::Machine;
use crate::options::Options;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `new TiledeskAuth(...)`. An unknown key is an error (`bad_options`). */
export interface TiledeskAuthOptions {
  /** The Tiledesk project id. Required. */
  projectId: string;
  /** The site's token endpoint, POSTed to (default "/auth"). It answers {token, expires_at?}. */
  authUrl?: string;
  /** Sent as the JSON body of the POST; without it the body is `{}` and the site's cookies say who it is. */
  credentials?: Record<string, unknown>;
  /** Send the browser's cookies with the POST when authUrl is on another origin (default true; the service must
   *  list this page's origin with --allowed-origin, which answers CORS with credentials). false: same-origin only. */
  withCredentials?: boolean;
  /** Instead of authUrl: the page supplies tokens ("JWT ..." or a bare JWT, or {token, expiresAt}). */
  getToken?: () => Promise<string | { token: string; expiresAt?: number; expires_at?: number }> | string;
  /** The Tiledesk loader (default "https://widget.tiledesk.com/v6/launch.js"). */
  widgetUrl?: string;
  /** Merged into window.tiledeskSettings (projectid, autoStart: false and startHidden: false are set by us). */
  settings?: Record<string, unknown>;
  /** Limit for each step, in milliseconds (default 15000). */
  timeoutMs?: number;
  /** "hidden" (default): keep the widget hidden on failure; "anonymous": sign in anonymously and show it. */
  onFailure?: "hidden" | "anonymous";
  /** Sign in again with a fresh token at 80% of the current token's life, and whenever the widget loses the
   *  session, retrying until it succeeds (default true). */
  refresh?: boolean;
  /** "now" (default): the loader boots as soon as it has loaded; "interaction": Tiledesk's own behaviour, at
   *  the visitor's first scroll, click, touch or key, or after 5 seconds. */
  boot?: "now" | "interaction";
  /** Keep the site's tabs in step (default true): a sign-out in one tab signs out every tab, and a sign-in in one
   *  makes the others sign in too, each asking its own token source and only if that names the same visitor. */
  syncTabs?: boolean;
}

/** Options of `signIn(...)`: who to sign in this time (and refresh with). An unknown key is an error. */
export interface TiledeskAuthSignInOptions {
  /** Sent as the JSON body of the POST to the constructor's authUrl. */
  credentials?: Record<string, unknown>;
  /** The page supplies this visitor's tokens. */
  getToken?: () => Promise<string | { token: string; expiresAt?: number; expires_at?: number }> | string;
}

export type TiledeskAuthStatus = "idle" | "loading" | "authenticated" | "anonymous" | "signed_out" | "error";

export type TiledeskAuthErrorCode =
  | "auth_rejected" | "auth_endpoint" | "network" | "timeout" | "widget_load" | "sign_in_rejected" | "bad_options"
  | "aborted";

/** The visitor's state, given to onStateChange listeners and by signIn(). */
export interface TiledeskAuthState {
  status: TiledeskAuthStatus;
  /** The chat user id the widget reported online: "<projectId>_<site user id>", or a guest's id when anonymous. */
  userId: string | null;
  /** When the current token expires, in Unix seconds. */
  expiresAt: number | null;
  error: { code: TiledeskAuthErrorCode; message: string } | null;
}

/** What signIn() and the constructor reject or throw with. */
export interface TiledeskAuthError extends Error {
  code: TiledeskAuthErrorCode;
}
"#;

/// Signs the visitor into the Tiledesk widget with a token from the site.
///
/// Made by JavaScript (`new TiledeskAuth(...)`), a started object lives while it has work (a sign-in under way, a
/// session to keep), whether or not the page keeps a reference to it: only `signOut()` and `free()` end that work.
/// Made by Rust ([`TiledeskAuth::new`]), dropping it is `free()`.
#[wasm_bindgen]
pub struct TiledeskAuth {
    machine: Rc<Machine>,
    /// Made by the page's `new`: when the garbage collector takes the page's wrapper (wasm-bindgen's finaliser drops
    /// this handle), the work goes on; `free()` ends it.
    page_owned: bool,
}

impl TiledeskAuth {
    /// Checks the options, as the JavaScript constructor does. Rust owns the object: dropping it is `free()`.
    pub fn new(options: &JsValue) -> Result<TiledeskAuth, JsValue> {
        Self::create(options, false)
    }

    fn create(options: &JsValue, page_owned: bool) -> Result<TiledeskAuth, JsValue> {
        let options = Options::parse(options).map_err(|e| e.to_js())?;
        Ok(Self {
            machine: Machine::new(options),
            page_owned,
        })
    }
}

#[wasm_bindgen]
impl TiledeskAuth {
    /// Checks the options; throws an `Error` with `code: "bad_options"` when they are not usable.
    #[wasm_bindgen(constructor)]
    pub fn construct(
        #[wasm_bindgen(unchecked_param_type = "TiledeskAuthOptions")] options: &JsValue,
    ) -> Result<TiledeskAuth, JsValue> {
        Self::create(options, true)
    }

    /// Stops everything this object does (a sign-in under way rejects with `aborted`, the refresh timer, the
    /// listeners on the widget, the tab channel) and frees it. The widget is left as it is.
    #[wasm_bindgen(js_name = free)]
    pub fn free(self) {
        self.machine.shutdown();
    }

    /// Signs the visitor in; resolves with the state once the widget reports them online and is shown.
    ///
    /// Without options it uses the constructor's token source, and while a sign-in is under way it returns that
    /// sign-in's Promise. With `{credentials}` or `{getToken}` it signs in whoever those name (and refreshes
    /// with them): another visitor than the one signed in is logged out of the widget first, and a sign-in under
    /// way is replaced (its Promise rejects with `aborted`).
    #[wasm_bindgen(js_name = signIn, unchecked_return_type = "Promise<TiledeskAuthState>")]
    pub fn sign_in(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TiledeskAuthSignInOptions")] options: Option<Object>,
    ) -> Promise {
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        self.machine.sign_in_with(&options)
    }

    /// Signs the visitor out: widget logout, the widget's stored session cleared, widget hidden, and the same in
    /// every other tab of the site (`syncTabs`). Settles within `timeoutMs` whatever the widget does. A sign-in
    /// under way stops and resolves with this signed-out state.
    #[wasm_bindgen(js_name = signOut, unchecked_return_type = "Promise<TiledeskAuthState>")]
    pub fn sign_out(&self) -> Promise {
        Rc::clone(&self.machine).sign_out(true)
    }

    /// Calls `listener(state)` on every change; returns a function that removes the listener.
    #[wasm_bindgen(js_name = onStateChange, unchecked_return_type = "() => void")]
    pub fn on_state_change(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(state: TiledeskAuthState) => void")] listener: Function,
    ) -> JsValue {
        self.machine.add_listener(listener)
    }

    /// The current state.
    #[wasm_bindgen(getter, unchecked_return_type = "TiledeskAuthState")]
    pub fn state(&self) -> JsValue {
        self.machine.state_js()
    }
}

impl Drop for TiledeskAuth {
    /// Made by Rust: `free()`. Made by the page: its wrapper was freed or garbage-collected; a started object goes on
    /// with its work (the keep-alive holds it), and everything else of it goes with the last reference.
    fn drop(&mut self) {
        if !self.page_owned {
            self.machine.shutdown();
        }
    }
}
