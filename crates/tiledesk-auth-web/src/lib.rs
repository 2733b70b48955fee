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
//! The sequence follows `docs/tiledesk.md`: settings with `autoStart: false`, `hide` queued, the token fetched
//! in parallel with the loader, the loader made to boot at once, `signInWithCustomToken` called directly after
//! `onBeforeInit` so its Promise is awaited, the widget shown once it reports *this* visitor online, the stored
//! session removed before boot, and a fresh token signed in before the current one expires or whenever the widget
//! loses the session.

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
use crate::options::{Boot, OnFailure, Options};
use crate::race::{first, sleep, with_timeout};
use crate::state::{AuthState, ErrorInfo, Status};
use crate::token::SiteToken;
use crate::widget::{Called, Listener};

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
  /** Sign in again with a fresh token at 80% of the current token's life, and whenever the widget loses the
   *  session, retrying until it succeeds (default true). */
  refresh?: boolean;
  /** "now" (default): the loader boots as soon as it has loaded; "interaction": Tiledesk's own behaviour, at
   *  the visitor's first scroll, click, touch or key, or after 5 seconds. */
  boot?: "now" | "interaction";
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
#[wasm_bindgen]
pub struct TiledeskAuth {
    inner: Rc<Inner>,
}

/// What the module is doing with the widget; each mode says how widget events are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Not signed in, nothing under way.
    Idle,
    /// `signIn()` under way.
    SigningIn,
    /// The visitor is online in the widget; an `offline` means a lost session.
    SignedIn,
    /// The widget lost the session, or a refresh failed: signing in again until it works.
    Recovering,
    /// Signed in anonymously (`onFailure: "anonymous"`).
    Anonymous,
    /// Signed out: if the widget still comes online as our visitor (a sign-in that was under way), log it out.
    SignedOut,
    /// `signIn()` failed; nothing under way.
    Failed,
}

/// Who the next `online` must be for, and where to say it came.
struct OnlineWaiter {
    /// The chat id the token names; `None` accepts any signed-in visitor (an opaque token, or a guest).
    user: Option<String>,
    sender: oneshot::Sender<Option<String>>,
}

/// How a `signIn()` under way ends early: `signOut()` resolves it with the signed-out state, `free()` rejects it.
type Interrupt = oneshot::Sender<Result<AuthState, AuthError>>;

struct Inner {
    options: Options,
    state: RefCell<AuthState>,
    listeners: RefCell<Vec<(u32, Function)>>,
    next_listener: Cell<u32>,
    mode: Cell<Mode>,
    /// The chat id of the visitor signed in, or being signed in.
    user: RefCell<Option<String>>,
    /// The Promise of the sign-in under way: a second `signIn()` gets the same one.
    in_flight: RefCell<Option<Promise>>,
    interrupt: RefCell<Option<Interrupt>>,
    /// Bumped by `signOut` and by drop: timers and refreshes started under an older generation stop.
    generation: Cell<u32>,
    refresh_timer: RefCell<Option<Timeout>>,
    refreshing: Cell<bool>,
    /// Failed refreshes in a row, for the back-off.
    failures: Cell<u32>,
    /// Our `onAuthStateChanged` listener on the widget; dropping it removes it.
    auth_listener: RefCell<Option<Listener>>,
    online: RefCell<Option<OnlineWaiter>>,
    /// Told when the widget reports `offline`: its `logout()` Promise may never settle, the event does.
    offline: RefCell<Option<oneshot::Sender<()>>>,
    /// The widget's `signInWithCustomToken` Promise while it is under way.
    widget_sign_in: RefCell<Option<Promise>>,
    leaving: Cell<bool>,
    /// Whether the widget's last report was our visitor online (`online` for them; `offline` clears it).
    widget_online: Cell<bool>,
}

/// How long one `logout()` call is given before it is made again (see `leave_widget`).
const LOGOUT_WAIT_MS: u32 = 500;

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

/// Milliseconds before the next try after `failures` failed refreshes, with `left` seconds of token life:
/// half the time left (at most 30 s) while the widget still holds a valid session, else 1, 2, 4... 30 s.
fn retry_delay_ms(failures: u32, left: f64, session_alive: bool) -> u32 {
    let seconds = if session_alive && left > 2.0 {
        (left / 2.0).min(30.0)
    } else {
        f64::from(1u32 << failures.saturating_sub(1).min(5)).min(30.0)
    };
    (seconds * 1000.0) as u32
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
                mode: Cell::new(Mode::Idle),
                user: RefCell::new(None),
                in_flight: RefCell::new(None),
                interrupt: RefCell::new(None),
                generation: Cell::new(0),
                refresh_timer: RefCell::new(None),
                refreshing: Cell::new(false),
                failures: Cell::new(0),
                auth_listener: RefCell::new(None),
                online: RefCell::new(None),
                offline: RefCell::new(None),
                widget_sign_in: RefCell::new(None),
                leaving: Cell::new(false),
                widget_online: Cell::new(false),
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
        let (interrupt, interrupted) = oneshot::channel();
        *inner.interrupt.borrow_mut() = Some(interrupt);
        let promise = future_to_promise(async move {
            let interrupted = async move { interrupted.await.unwrap_or(Err(AuthError::Aborted)) };
            let signing_in = async {
                let result = Rc::clone(&inner).sign_in(generation).await;
                if inner.aborted(generation) {
                    // Stopped by signOut() or free(): the outcome is theirs, sent through the interrupt.
                    std::future::pending::<()>().await;
                }
                result
            };
            let result = first(signing_in, interrupted).await;
            if !inner.aborted(generation) {
                inner.in_flight.borrow_mut().take();
                inner.interrupt.borrow_mut().take();
            }
            result.map(|state| state.to_js()).map_err(|e| e.to_js())
        });
        *self.inner.in_flight.borrow_mut() = Some(promise.clone());
        promise
    }

    /// Signs the visitor out: widget logout, the widget's stored session cleared, widget hidden. Settles within
    /// `timeoutMs` whatever the widget does. A sign-in under way stops and resolves with this signed-out state.
    #[wasm_bindgen(js_name = signOut, unchecked_return_type = "Promise<TiledeskAuthState>")]
    pub fn sign_out(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        let interrupt = inner.stop_work();
        inner.mode.set(Mode::SignedOut);
        future_to_promise(async move {
            // A widget sign-in under way would store its session after we cleared it: let it finish first.
            let pending = inner.widget_sign_in.borrow_mut().take();
            if let Some(pending) = pending {
                let _ = with_timeout(inner.options.timeout_ms, "the widget to sign in", async {
                    let _ = JsFuture::from(pending).await;
                    Ok(())
                })
                .await;
            }
            inner.leave_widget().await;
            let state = AuthState {
                status: Status::SignedOut,
                user_id: None,
                expires_at: None,
                error: None,
            };
            inner.set_state(state.clone());
            if let Some(interrupt) = interrupt {
                interrupt.send(Ok(state.clone()));
            }
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
    /// `free()` from JS: every timer and listener of this object goes; a sign-in under way rejects with
    /// `aborted`. The widget is left as it is.
    fn drop(&mut self) {
        let interrupt = self.inner.stop_work();
        self.inner.mode.set(Mode::Idle);
        self.inner.listeners.borrow_mut().clear();
        self.inner.auth_listener.borrow_mut().take();
        self.inner.offline.borrow_mut().take();
        if let Some(interrupt) = interrupt {
            interrupt.send(Err(AuthError::Aborted));
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

    /// Stops everything under way (sign-in, refresh timer, the wait for `online`); returns the interrupt of the
    /// sign-in under way, for the caller to settle it.
    fn stop_work(&self) -> Option<Interrupt> {
        self.generation.set(self.generation.get().wrapping_add(1));
        self.in_flight.borrow_mut().take();
        self.refresh_timer.borrow_mut().take();
        self.online.borrow_mut().take();
        self.failures.set(0);
        self.interrupt.borrow_mut().take()
    }

    /// Logs the widget out, clears its stored session and hides it; settles within `timeoutMs`.
    ///
    /// The widget's `logout()` returns nothing when nobody is logged in, and a Promise that never settles (and
    /// logs nobody out) while its chat connection has not subscribed yet. So each call waits for the first of its
    /// Promise, its `offline` report, or half a second, and is made again while the widget still reports our
    /// visitor online.
    async fn leave_widget(&self) {
        self.leaving.set(true);
        let started = js_sys::Date::now();
        loop {
            if let Called::Promise(logout) = widget::call("logout", &JsValue::UNDEFINED) {
                let (sender, offline) = oneshot::channel();
                *self.offline.borrow_mut() = Some(sender);
                let logged_out = async {
                    let _ = JsFuture::from(logout).await;
                };
                let reported = async {
                    let _ = offline.await;
                };
                first(first(logged_out, reported), sleep(LOGOUT_WAIT_MS)).await;
                self.offline.borrow_mut().take();
            }
            if self.mode.get() != Mode::SignedOut {
                // Freed, or signing in again: the widget is no longer ours to log out.
                self.leaving.set(false);
                return;
            }
            let elapsed = js_sys::Date::now() - started;
            if !self.widget_online.get()
                || elapsed + f64::from(LOGOUT_WAIT_MS) > f64::from(self.options.timeout_ms)
            {
                break;
            }
        }
        widget::hide();
        session::clear(&self.options.project_id);
        self.leaving.set(false);
    }

    async fn sign_in(self: Rc<Self>, generation: u32) -> Result<AuthState, AuthError> {
        self.mode.set(Mode::SigningIn);
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
            // Before the loader boots: a stored token would be re-used (expired: the widget vanishes on the 401;
            // another visitor's: the widget signs in as them).
            session::clear(&self.options.project_id);
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
        let user_id = self.sign_in_widget(&token).await?;
        self.signed_in(&token, user_id);
        Ok(self.state.borrow().clone())
    }

    /// The widget reported the visitor online with `token`: shown, `authenticated`, refresh scheduled.
    fn signed_in(self: &Rc<Self>, token: &SiteToken, user_id: Option<String>) {
        self.mode.set(Mode::SignedIn);
        self.failures.set(0);
        // Always: a widget that lost its session hid itself.
        widget::show();
        self.set_state(AuthState {
            status: Status::Authenticated,
            user_id,
            expires_at: token.expires_at,
            error: None,
        });
        self.schedule_refresh(token.expires_at);
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
        let (script, inserted) =
            widget::prepare(&self.options.project_id, self.options.settings.as_ref(), &url)?;
        if inserted {
            let sender = Rc::clone(&sender);
            let on_error = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
                if let Some(sender) = sender.borrow_mut().take() {
                    sender.send(Err(AuthError::WidgetLoad(url.clone())));
                }
            })
            .into_js_value();
            let _ = script.add_event_listener_with_callback("error", on_error.unchecked_ref());
        }
        if self.options.boot == Boot::Now {
            // The loader waits for an interaction before it boots: once it has run, give it one.
            let nudge = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| widget::nudge_boot()).into_js_value();
            let _ = script.add_event_listener_with_callback("load", nudge.unchecked_ref());
            if !inserted {
                // The page's own loader may have run already.
                widget::nudge_boot();
            }
        }
        widget::on_boot(Box::new(move || {
            if let Some(sender) = sender.borrow_mut().take() {
                sender.send(Ok(()));
            }
        }));
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
        let listener = Listener::new("onAuthStateChanged", move |event: JsValue| {
            if let Some(inner) = weak.upgrade() {
                inner.on_auth_state(&event);
            }
        });
        *self.auth_listener.borrow_mut() = listener;
    }

    fn on_auth_state(self: &Rc<Self>, event: &JsValue) {
        let detail = Reflect::get(event, &"detail".into()).unwrap_or(JsValue::UNDEFINED);
        let field = |name: &str| Reflect::get(&detail, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let kind = field("event").as_string().unwrap_or_default();
        let logged = field("isLogged").as_bool().unwrap_or(false);
        let user_id = field("user_id").as_string();
        if kind == "online" && logged {
            let ours = user_id.is_some() && *self.user.borrow() == user_id;
            self.widget_online.set(ours);
            let waiting_for_it = self
                .online
                .borrow()
                .as_ref()
                .is_some_and(|w| w.user.is_none() || w.user == user_id);
            if waiting_for_it {
                if let Some(waiter) = self.online.borrow_mut().take() {
                    waiter.sender.send(user_id);
                }
                return;
            }
            match self.mode.get() {
                // A sign-in that was under way when the visitor signed out has completed: undo it.
                Mode::SignedOut if ours && !self.leaving.get() => {
                    let inner = Rc::clone(self);
                    spawn_local(async move { inner.leave_widget().await });
                }
                // The widget reconnected by itself (its chat connection came back).
                Mode::Recovering if ours && !self.refreshing.get() => self.recovered(),
                _ => {}
            }
        } else if kind == "offline" && !logged {
            self.widget_online.set(false);
            if let Some(sender) = self.offline.borrow_mut().take() {
                sender.send(());
            }
            if self.mode.get() == Mode::SignedIn && self.options.refresh {
                // We expected the visitor online: the session is lost; sign in again now.
                self.mode.set(Mode::Recovering);
                if !self.refreshing.get() {
                    self.refresh_timer.borrow_mut().take();
                    spawn_local(Rc::clone(self).refresh(self.generation.get()));
                }
            }
        }
    }

    /// The widget is online again as our visitor with the token it has: shown and `authenticated`, and that
    /// token refreshed on schedule.
    fn recovered(self: &Rc<Self>) {
        let current = self.state.borrow().clone();
        self.mode.set(Mode::SignedIn);
        self.failures.set(0);
        widget::show();
        self.set_state(AuthState {
            status: Status::Authenticated,
            error: None,
            user_id: self.user.borrow().clone(),
            ..current
        });
        self.schedule_refresh(current.expires_at);
    }

    /// `signInWithCustomToken` called directly, its Promise awaited, then the `online` report for the token's
    /// visitor awaited.
    async fn sign_in_widget(&self, token: &SiteToken) -> Result<Option<String>, AuthError> {
        *self.user.borrow_mut() = token.user_id.clone();
        let (sender, online) = oneshot::channel();
        *self.online.borrow_mut() = Some(OnlineWaiter {
            user: token.user_id.clone(),
            sender,
        });
        let result = match widget::call("signInWithCustomToken", &JsValue::from(token.value.as_str())) {
            Called::Missing => Err(AuthError::SignInRejected(
                "the widget has no signInWithCustomToken method".to_owned(),
            )),
            Called::Threw(e) => Err(AuthError::SignInRejected(widget::message_of(&e))),
            Called::NotAPromise => Ok(()),
            Called::Promise(promise) => {
                *self.widget_sign_in.borrow_mut() = Some(promise.clone());
                let result = with_timeout(self.options.timeout_ms, "the widget to sign in", async {
                    JsFuture::from(promise)
                        .await
                        .map(|_| ())
                        .map_err(|e| AuthError::SignInRejected(widget::message_of(&e)))
                })
                .await;
                self.widget_sign_in.borrow_mut().take();
                result
            }
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
            // When the anonymous sign-in fails too, the original failure is what the page hears.
            if let Ok(guest) = self.sign_in_anonymously().await {
                self.mode.set(Mode::Anonymous);
                widget::show();
                let state = AuthState {
                    status: Status::Anonymous,
                    user_id: guest,
                    expires_at: None,
                    error: Some(ErrorInfo::from(&err)),
                };
                self.set_state(state.clone());
                return Ok(state);
            }
        }
        widget::hide();
        self.mode.set(Mode::Failed);
        self.enter_error(&err);
        Err(err)
    }

    /// `signInAnonymous`, then the widget's `online` for the guest; returns the guest's chat id.
    async fn sign_in_anonymously(&self) -> Result<Option<String>, AuthError> {
        session::clear(&self.options.project_id);
        self.user.borrow_mut().take();
        let (sender, online) = oneshot::channel();
        *self.online.borrow_mut() = Some(OnlineWaiter { user: None, sender });
        if let Called::Promise(promise) = widget::call("signInAnonymous", &JsValue::UNDEFINED) {
            let signed = with_timeout(self.options.timeout_ms, "the widget to sign in", async {
                JsFuture::from(promise)
                    .await
                    .map_err(|e| AuthError::SignInRejected(widget::message_of(&e)))
            })
            .await;
            if let Err(err) = signed {
                self.online.borrow_mut().take();
                return Err(err);
            }
        }
        let what = "the widget to report the guest online";
        with_timeout(self.options.timeout_ms, what, async {
            online.await.ok_or(AuthError::Timeout(what))
        })
        .await
    }

    /// The `error` state, keeping what the state knew of the visitor.
    fn enter_error(&self, err: &AuthError) {
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

    /// Signs in again with a fresh token. On failure it tries again, sooner while the widget still holds a valid
    /// session, and with a growing pause (up to 30 s) once it does not, until it works or the visitor signs out.
    async fn refresh(self: Rc<Self>, generation: u32) {
        if self.aborted(generation) || self.refreshing.replace(true) {
            return;
        }
        let result = async {
            let token = with_timeout(self.options.timeout_ms, "the site's token endpoint", async {
                token::fetch(&self.options.source).await
            })
            .await?;
            if self.aborted(generation) {
                return Err(AuthError::Aborted);
            }
            let user_id = self.sign_in_widget(&token).await?;
            Ok::<_, AuthError>((token, user_id))
        }
        .await;
        self.refreshing.set(false);
        if self.aborted(generation) {
            return;
        }
        match result {
            Ok((token, user_id)) => self.signed_in(&token, user_id),
            Err(err) => {
                let failures = self.failures.get() + 1;
                self.failures.set(failures);
                let left = self.state.borrow().expires_at.map_or(0.0, |exp| exp - now_secs());
                let alive = self.mode.get() == Mode::SignedIn && left > 2.0;
                if !alive {
                    self.mode.set(Mode::Recovering);
                    self.enter_error(&err);
                }
                self.schedule_refresh_in(retry_delay_ms(failures, left, alive));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{refresh_delay_ms, retry_delay_ms};

    #[test]
    fn refresh_at_eighty_percent_of_the_remaining_life() {
        assert_eq!(refresh_delay_ms(1000.0, 1010.0), 8000);
        assert_eq!(refresh_delay_ms(1000.0, 4600.0), 2_880_000);
        assert_eq!(refresh_delay_ms(1000.0, 990.0), 0, "already expired: now");
        assert_eq!(refresh_delay_ms(0.0, 1e12), u32::MAX);
    }

    #[test]
    fn retries_sooner_while_the_session_lives_and_back_off_once_it_is_lost() {
        assert_eq!(retry_delay_ms(1, 600.0, true), 30_000, "at most 30 s");
        assert_eq!(retry_delay_ms(1, 10.0, true), 5_000, "half the time left");
        let lost: Vec<u32> = (1..=8).map(|n| retry_delay_ms(n, 600.0, false)).collect();
        assert_eq!(lost, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(retry_delay_ms(1, 1.0, true), 1000, "no time left: as lost");
    }
}
