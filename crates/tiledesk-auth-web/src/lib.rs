//! `tiledesk-auth-web`: signs a site's logged-in visitor into the Tiledesk chat widget, with no race against
//! the loader and no dead session.
//!
//! ```js
//! import init, { TiledeskAuth } from "./pkg/tiledesk_auth_web.js";
//! await init();
//! const auth = new TiledeskAuth({ projectId: "64f0...", authUrl: "/auth", credentials: { email, password } });
//! auth.onStateChange((s) => console.log(s.status, s.userId, s.expiresAt, s.error));
//! await auth.signIn();   // resolves once the widget reports the visitor online and is shown
//! await auth.signOut();  // logout, clear the widget's stored session, hide
//! ```
//!
//! The sequence follows `shared/docs/tiledesk-contract.md`: settings with `autoStart: false`, `hide` queued, the
//! token fetched in parallel with the loader, `signInWithCustomToken` called directly after `onBeforeInit` so
//! its Promise is awaited, the widget shown on the first `online` with `isLogged`, a stale stored session
//! removed before boot, and a fresh token signed in before the current one expires.

#![deny(missing_docs)]

mod error;
mod oneshot;
mod options;
mod race;
mod session;
mod state;
mod token;
mod widget;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise, spawn_local};

use crate::error::AuthError;
use crate::options::{OnFailure, Options};
use crate::race::with_timeout;
use crate::state::{AuthState, ErrorInfo, Status};
use crate::token::SiteToken;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `new TiledeskAuth(...)`. An unknown key is an error (`bad_options`). */
export interface TiledeskAuthOptions {
  /** The Tiledesk project id. Required. */
  projectId: string;
  /** The site's token endpoint, POSTed to (default "/auth"). It answers {token, expires_at?}. */
  authUrl?: string;
  /** Sent as the JSON body of the POST; without it the POST carries the site's cookies. */
  credentials?: Record<string, unknown>;
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
  /** Sign in again with a fresh token at 80% of the current token's life (default true). */
  refresh?: boolean;
}

export type TiledeskAuthStatus = "idle" | "loading" | "authenticated" | "anonymous" | "signed_out" | "error";

export type TiledeskAuthErrorCode =
  | "auth_rejected" | "auth_endpoint" | "network" | "timeout" | "widget_load" | "sign_in_rejected" | "bad_options";

/** The visitor's state, given to onStateChange listeners and by signIn(). */
export interface TiledeskAuthState {
  status: TiledeskAuthStatus;
  /** The chat user id ("<projectId>_<site user id>") once the widget reports the visitor online. */
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
#[wasm_bindgen]
pub struct TiledeskAuth {
    inner: Rc<Inner>,
}

struct Inner {
    options: Options,
    state: RefCell<AuthState>,
    listeners: RefCell<Vec<(u32, Function)>>,
    next_listener: Cell<u32>,
    /// The Promise of the sign-in under way: a second `signIn()` gets the same one.
    in_flight: RefCell<Option<Promise>>,
    /// Bumped by `signOut` and by drop: work started under an older generation stops.
    generation: Cell<u32>,
    refresh_timer: RefCell<Option<Timeout>>,
    refreshing: Cell<bool>,
    /// Our `onAuthStateChanged` listener, as registered on the widget.
    auth_listener: RefCell<Option<Function>>,
    /// Resolved by the next `online` with `isLogged`, with the chat user id.
    online: RefCell<Option<oneshot::Sender<Option<String>>>>,
    shown: Cell<bool>,
    /// Signed in and not signing out: an `offline` from the widget then means a lost session to restore.
    /// Cleared before anything else by sign-out and drop, because the widget's own `logout` fires `offline`.
    expect_online: Cell<bool>,
}

fn now_secs() -> f64 {
    js_sys::Date::now() / 1000.0
}

/// Milliseconds until a token issued now and expiring at `expires_at` should be replaced: 80% of its life.
fn refresh_delay_ms(now: f64, expires_at: f64) -> u32 {
    let ms = ((expires_at - now) * 0.8 * 1000.0).max(0.0);
    if ms >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        ms as u32
    }
}

fn js_message(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "rejected".to_owned())
}

#[wasm_bindgen]
impl TiledeskAuth {
    /// Checks the options; throws an `Error` with `code: "bad_options"` when they are not usable.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "TiledeskAuthOptions")] options: &JsValue,
    ) -> Result<TiledeskAuth, JsValue> {
        let options = Options::parse(options).map_err(|e| e.to_js())?;
        Ok(Self {
            inner: Rc::new(Inner {
                options,
                state: RefCell::new(AuthState::idle()),
                listeners: RefCell::new(Vec::new()),
                next_listener: Cell::new(0),
                in_flight: RefCell::new(None),
                generation: Cell::new(0),
                refresh_timer: RefCell::new(None),
                refreshing: Cell::new(false),
                auth_listener: RefCell::new(None),
                online: RefCell::new(None),
                shown: Cell::new(false),
                expect_online: Cell::new(false),
            }),
        })
    }

    /// Signs the visitor in; resolves with the state once the widget reports them online and is shown.
    /// Called again while a sign-in is under way, it returns the same Promise.
    #[wasm_bindgen(js_name = signIn, unchecked_return_type = "Promise<TiledeskAuthState>")]
    pub fn sign_in(&self) -> Promise {
        if let Some(promise) = self.inner.in_flight.borrow().as_ref() {
            return promise.clone();
        }
        let inner = Rc::clone(&self.inner);
        let generation = inner.generation.get();
        let promise = future_to_promise(async move {
            let result = Rc::clone(&inner).sign_in(generation).await;
            if inner.generation.get() == generation {
                inner.in_flight.borrow_mut().take();
            }
            result.map(|state| state.to_js()).map_err(|e| e.to_js())
        });
        *self.inner.in_flight.borrow_mut() = Some(promise.clone());
        promise
    }

    /// Signs the visitor out: widget logout, the widget's stored session cleared, widget hidden.
    /// A sign-in under way stops and resolves with this signed-out state.
    #[wasm_bindgen(js_name = signOut, unchecked_return_type = "Promise<TiledeskAuthState>")]
    pub fn sign_out(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        inner.stop_work();
        future_to_promise(async move {
            inner.leave_widget().await;
            let state = AuthState {
                status: Status::SignedOut,
                user_id: None,
                expires_at: None,
                error: None,
            };
            inner.set_state(state.clone());
            Ok(state.to_js())
        })
    }

    /// Calls `listener(state)` on every change; returns a function that removes the listener.
    #[wasm_bindgen(js_name = onStateChange, unchecked_return_type = "() => void")]
    pub fn on_state_change(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(state: TiledeskAuthState) => void")] listener: Function,
    ) -> JsValue {
        let id = self.inner.next_listener.get();
        self.inner.next_listener.set(id + 1);
        self.inner.listeners.borrow_mut().push((id, listener));
        let weak = Rc::downgrade(&self.inner);
        Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.listeners.borrow_mut().retain(|(other, _)| *other != id);
            }
        })
        .into_js_value()
    }

    /// The current state.
    #[wasm_bindgen(getter, unchecked_return_type = "TiledeskAuthState")]
    pub fn state(&self) -> JsValue {
        self.inner.state.borrow().to_js()
    }
}

impl Drop for TiledeskAuth {
    /// `free()` from JS: every timer and listener of this object goes; work under way stops.
    fn drop(&mut self) {
        self.inner.stop_work();
        self.inner.listeners.borrow_mut().clear();
        if let Some(listener) = self.inner.auth_listener.borrow_mut().take() {
            widget::unlisten("onAuthStateChanged", &listener);
        }
    }
}

impl Inner {
    fn set_state(&self, state: AuthState) {
        if *self.state.borrow() == state {
            return;
        }
        let value = state.to_js();
        *self.state.borrow_mut() = state;
        let listeners: Vec<Function> = self.listeners.borrow().iter().map(|(_, f)| f.clone()).collect();
        for listener in listeners {
            // A listener that throws must not break the sign-in.
            let _ = listener.call1(&JsValue::NULL, &value);
        }
    }

    fn aborted(&self, generation: u32) -> bool {
        self.generation.get() != generation
    }

    /// Stops everything under way: sign-in, refresh timer, the wait for `online`.
    fn stop_work(&self) {
        self.expect_online.set(false);
        self.generation.set(self.generation.get().wrapping_add(1));
        self.in_flight.borrow_mut().take();
        self.refresh_timer.borrow_mut().take();
        self.online.borrow_mut().take();
    }

    /// Logs the widget out, clears its stored session and hides it.
    async fn leave_widget(&self) {
        if let Some(Ok(result)) = widget::call("logout", &JsValue::UNDEFINED)
            && let Ok(promise) = result.dyn_into::<Promise>()
        {
            let _ = with_timeout(self.options.timeout_ms, "the widget to log out", async {
                JsFuture::from(promise)
                    .await
                    .map(|_| ())
                    .map_err(|e| AuthError::SignInRejected(js_message(&e)))
            })
            .await;
        }
        widget::hide();
        session::clear(&self.options.project_id);
        self.shown.set(false);
    }

    async fn sign_in(self: Rc<Self>, generation: u32) -> Result<AuthState, AuthError> {
        let current = self.state.borrow().clone();
        self.set_state(AuthState {
            status: Status::Loading,
            error: None,
            ..current
        });
        match Rc::clone(&self).try_sign_in(generation).await {
            Ok(state) => Ok(state),
            Err(_) if self.aborted(generation) => Ok(self.state.borrow().clone()),
            Err(err) => self.fail(err).await,
        }
    }

    async fn try_sign_in(self: Rc<Self>, generation: u32) -> Result<AuthState, AuthError> {
        if !widget::is_booted() {
            // Before the loader boots: a stale stored token would make the widget vanish.
            session::clear_if_stale(&self.options.project_id, now_secs());
        }
        // The token is fetched while the loader loads.
        let (sender, token) = oneshot::channel();
        let fetcher = Rc::clone(&self);
        spawn_local(async move {
            let result = with_timeout(fetcher.options.timeout_ms, "the site's token endpoint", async {
                token::fetch(&fetcher.options.source).await
            })
            .await;
            sender.send(result);
        });
        self.widget_ready().await?;
        self.listen_auth_state();
        let token = token
            .await
            .unwrap_or(Err(AuthError::Timeout("the site's token endpoint")))?;
        if self.aborted(generation) {
            return Ok(self.state.borrow().clone());
        }
        let user_id = self.sign_in_widget(&token).await;
        if self.aborted(generation) {
            // Signed out while the widget was signing in: signing out wins.
            self.leave_widget().await;
            return Ok(self.state.borrow().clone());
        }
        let user_id = user_id?;
        if !self.shown.replace(true) {
            let _ = widget::call("show", &JsValue::UNDEFINED);
        }
        let state = AuthState {
            status: Status::Authenticated,
            user_id,
            expires_at: token.expires_at,
            error: None,
        };
        self.set_state(state.clone());
        self.expect_online.set(true);
        self.schedule_refresh(token.expires_at);
        Ok(state)
    }

    /// Waits until the widget's methods can be called, installing settings, stub and loader if needed.
    async fn widget_ready(&self) -> Result<(), AuthError> {
        if widget::is_booted() {
            widget::hide();
            return Ok(());
        }
        let (sender, ready) = oneshot::channel::<Result<(), AuthError>>();
        let sender = Rc::new(RefCell::new(Some(sender)));
        let url = self.options.widget_url.clone();
        if let Some(script) = widget::prepare(&self.options.project_id, self.options.settings.as_ref(), &url)?
        {
            let sender = Rc::clone(&sender);
            let on_error = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
                if let Some(sender) = sender.borrow_mut().take() {
                    sender.send(Err(AuthError::WidgetLoad(url.clone())));
                }
            })
            .into_js_value();
            let _ = script.add_event_listener_with_callback("error", on_error.unchecked_ref());
        }
        let booted = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            if let Some(sender) = sender.borrow_mut().take() {
                sender.send(Ok(()));
            }
        })
        .into_js_value();
        widget::on_boot(booted.unchecked_into());
        with_timeout(self.options.timeout_ms, "the Tiledesk widget to load", async {
            ready
                .await
                .unwrap_or(Err(AuthError::Timeout("the Tiledesk widget to load")))
        })
        .await
    }

    /// Registers our `onAuthStateChanged` listener once, directly on the booted widget.
    fn listen_auth_state(self: &Rc<Self>) {
        if self.auth_listener.borrow().is_some() {
            return;
        }
        let weak = Rc::downgrade(self);
        let listener: Function = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Some(inner) = weak.upgrade() {
                inner.on_auth_state(&event);
            }
        })
        .into_js_value()
        .unchecked_into();
        if widget::listen("onAuthStateChanged", &listener) {
            *self.auth_listener.borrow_mut() = Some(listener);
        }
    }

    fn on_auth_state(self: &Rc<Self>, event: &JsValue) {
        let detail = Reflect::get(event, &"detail".into()).unwrap_or(JsValue::UNDEFINED);
        let field = |name: &str| Reflect::get(&detail, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let kind = field("event").as_string().unwrap_or_default();
        let logged = field("isLogged").as_bool().unwrap_or(false);
        if kind == "online" && logged {
            if let Some(sender) = self.online.borrow_mut().take() {
                sender.send(field("user_id").as_string());
            }
        } else if kind == "offline"
            && !logged
            && self.options.refresh
            && self.expect_online.get()
            && self.in_flight.borrow().is_none()
        {
            // We expected the visitor online: sign in again now.
            spawn_local(Rc::clone(self).refresh(self.generation.get()));
        }
    }

    /// `signInWithCustomToken` called directly, its Promise awaited, then the `online` report awaited.
    async fn sign_in_widget(&self, token: &SiteToken) -> Result<Option<String>, AuthError> {
        let (sender, online) = oneshot::channel();
        *self.online.borrow_mut() = Some(sender);
        let result = match widget::call("signInWithCustomToken", &JsValue::from(token.value.as_str())) {
            None => Err(AuthError::SignInRejected(
                "the widget has no signInWithCustomToken method".to_owned(),
            )),
            Some(Err(e)) => Err(AuthError::SignInRejected(js_message(&e))),
            Some(Ok(value)) => match value.dyn_into::<Promise>() {
                Ok(promise) => {
                    with_timeout(self.options.timeout_ms, "the widget to sign in", async {
                        JsFuture::from(promise)
                            .await
                            .map(|_| ())
                            .map_err(|e| AuthError::SignInRejected(js_message(&e)))
                    })
                    .await
                }
                Err(_) => Ok(()),
            },
        };
        if let Err(err) = result {
            self.online.borrow_mut().take();
            return Err(err);
        }
        with_timeout(
            self.options.timeout_ms,
            "the widget to report the visitor online",
            async {
                online
                    .await
                    .ok_or(AuthError::Timeout("the widget to report the visitor online"))
            },
        )
        .await
    }

    async fn fail(self: Rc<Self>, err: AuthError) -> Result<AuthState, AuthError> {
        let anonymous_possible =
            !matches!(err, AuthError::WidgetLoad(_) | AuthError::BadOptions(_)) && widget::is_booted();
        if self.options.on_failure == OnFailure::Anonymous && anonymous_possible {
            session::clear(&self.options.project_id);
            if let Some(Ok(promise)) = widget::call("signInAnonymous", &JsValue::UNDEFINED)
                && let Ok(promise) = promise.dyn_into::<Promise>()
            {
                let _ = JsFuture::from(promise).await;
            }
            let _ = widget::call("show", &JsValue::UNDEFINED);
            self.shown.set(true);
            let state = AuthState {
                status: Status::Anonymous,
                user_id: None,
                expires_at: None,
                error: Some(ErrorInfo::from(&err)),
            };
            self.set_state(state.clone());
            return Ok(state);
        }
        widget::hide();
        self.shown.set(false);
        self.enter_error(&err);
        Err(err)
    }

    /// The `error` state, keeping what the state knew of the visitor; no lost session to restore any more.
    fn enter_error(&self, err: &AuthError) {
        self.expect_online.set(false);
        let state = AuthState {
            status: Status::Error,
            error: Some(ErrorInfo::from(err)),
            ..self.state.borrow().clone()
        };
        self.set_state(state);
    }

    fn schedule_refresh(self: &Rc<Self>, expires_at: Option<f64>) {
        let Some(expires_at) = expires_at.filter(|_| self.options.refresh) else {
            return;
        };
        self.schedule_refresh_in(refresh_delay_ms(now_secs(), expires_at));
    }

    fn schedule_refresh_in(self: &Rc<Self>, delay_ms: u32) {
        let weak = Rc::downgrade(self);
        let generation = self.generation.get();
        let timer = Timeout::new(delay_ms, move || {
            if let Some(inner) = weak.upgrade() {
                spawn_local(inner.refresh(generation));
            }
        });
        *self.refresh_timer.borrow_mut() = Some(timer);
    }

    /// Signs in again with a fresh token; on failure retries while the current token is still valid.
    async fn refresh(self: Rc<Self>, generation: u32) {
        if self.aborted(generation) || self.refreshing.replace(true) {
            return;
        }
        let result = async {
            let token = with_timeout(self.options.timeout_ms, "the site's token endpoint", async {
                token::fetch(&self.options.source).await
            })
            .await?;
            let user_id = self.sign_in_widget(&token).await?;
            Ok::<_, AuthError>((token, user_id))
        }
        .await;
        self.refreshing.set(false);
        if self.aborted(generation) {
            return;
        }
        match result {
            Ok((token, user_id)) => {
                self.set_state(AuthState {
                    status: Status::Authenticated,
                    user_id,
                    expires_at: token.expires_at,
                    error: None,
                });
                self.expect_online.set(true);
                self.schedule_refresh(token.expires_at);
            }
            Err(err) => {
                let left = self.state.borrow().expires_at.map_or(0.0, |exp| exp - now_secs());
                if left > 2.0 {
                    self.schedule_refresh_in(((left / 2.0).min(30.0) * 1000.0) as u32);
                } else {
                    self.enter_error(&err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refresh_delay_ms;

    #[test]
    fn refresh_at_eighty_percent_of_the_remaining_life() {
        assert_eq!(refresh_delay_ms(1000.0, 1010.0), 8000);
        assert_eq!(refresh_delay_ms(1000.0, 4600.0), 2_880_000);
        assert_eq!(refresh_delay_ms(1000.0, 990.0), 0, "already expired: now");
        assert_eq!(refresh_delay_ms(0.0, 1e12), u32::MAX);
    }
}
