//! The state machine behind `TiledeskAuth`: what the object is doing (`Phase`, each phase owning what only it
//! needs: the sign-in under way and its Promise, the session's token source and refresh timer; leaving a phase drops
//! them), the widget as the machine sees it (`Link`: our listener on it, the watch on its life methods, who it
//! reports online, the waits on its events), and every transition.
//!
//! The sequence follows `docs/tiledesk.md`: settings with `autoStart: false`, `hide` queued, the token fetched in
//! parallel with the loader, the loader made to boot at once, `signInWithCustomToken` called directly after
//! `onBeforeInit` so its Promise is awaited, the widget shown once it reports *this* visitor online, the stored
//! session removed before boot, and a fresh token signed in before the current one expires or whenever the widget
//! loses the session.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise, spawn_local};

use crate::error::AuthError;
use crate::options::{Boot, OnFailure, Options, TokenSource};
use crate::race::{Task, first, sleep, with_timeout};
use crate::state::{AuthState, ErrorInfo, Status};
use crate::tabs::{Message, Tabs};
use crate::token::{self, SiteToken};
use crate::widget::{self, Called, LifeEvent, Listener, ScriptListener, Watch};
use crate::{oneshot, session};

/// What the object is doing. Each phase owns its handles and tasks; replacing the phase drops them (timers cleared,
/// tasks stopped before their next step), so no work of a phase that is gone can act.
#[allow(dead_code, reason = "the tasks are held for their Drop")]
enum Phase {
    /// Nothing under way: never signed in, or freed.
    Idle,
    /// A sign-in under way.
    SigningIn(SigningIn),
    /// The visitor is online in the widget; an `offline` means a lost session.
    SignedIn(Session),
    /// The widget lost the session, or a refresh failed: signing in again until it works.
    Recovering(Session),
    /// Signed in anonymously (`onFailure: "anonymous"`).
    Anonymous,
    /// `signOut()` under way: the task waits for a widget sign-in under way, then logs the widget out; another
    /// sign-in, sign-out or `free()` drops it before its next step.
    SigningOut(Task),
    /// Signed out. If the widget still comes online as our visitor (a sign-in that was under way), the task logs it
    /// out again.
    SignedOut(Option<Task>),
    /// The last sign-in failed; nothing under way.
    Failed,
}

/// A sign-in under way.
struct SigningIn {
    /// What a `signIn()` without options gets while this one runs: the same Promise.
    promise: Promise,
    /// Settles that Promise early: `signOut()` with the signed-out state, `free()` or a newer sign-in with
    /// `aborted`.
    interrupt: Interrupt,
    /// Dropped with the phase: the sign-in takes no further step, and its Promise waits for the interrupt.
    _alive: oneshot::Sender<()>,
}

/// A visitor signed in, and what keeps them signed in.
struct Session {
    /// Where this visitor's tokens come from: the constructor's source, or the one given to `signIn(options)`.
    source: Rc<TokenSource>,
    /// The chat id the widget reported online.
    user: Option<String>,
    expires_at: Option<f64>,
    /// What keeps the session fresh; each state owns its timer or its task.
    refresh: Refresh,
    /// Failed refreshes in a row, for the back-off.
    failures: u32,
}

/// What keeps a session fresh.
#[allow(dead_code, reason = "the timers and the task are held for their Drop")]
enum Refresh {
    /// Nothing scheduled: `refresh: false`, a token without an expiry, or a session the widget just lost (a refresh
    /// starts at once).
    Off,
    /// The next refresh, at 80% of the token's life.
    Scheduled(Timeout),
    /// A refresh under way; dropping it stops the refresh before its next step.
    Running(Task),
    /// The next try after failed ones.
    Backoff(Timeout),
}

impl Session {
    fn refreshing(&self) -> bool {
        matches!(self.refresh, Refresh::Running(_))
    }
}

impl Phase {
    /// A sign-in or a sign-out under way, or a session to keep signed in and refresh.
    fn has_work(&self) -> bool {
        matches!(
            self,
            Self::SigningIn(_) | Self::SignedIn(_) | Self::Recovering(_) | Self::SigningOut(_)
        )
    }

    /// Nothing to stop: never signed in, signed out (or signing out), or failed.
    fn at_rest(&self) -> bool {
        matches!(
            self,
            Self::Idle | Self::SigningOut(_) | Self::SignedOut(_) | Self::Failed
        )
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        match self {
            Self::SignedIn(session) | Self::Recovering(session) => Some(session),
            _ => None,
        }
    }

    fn has_session(&self) -> bool {
        matches!(self, Self::SignedIn(_) | Self::Recovering(_))
    }

    /// The widget lost the session: `SignedIn` becomes `Recovering`, with the same session (its refresh, its
    /// failures). Every other phase is the next phase of itself.
    fn lose_session(self) -> Self {
        match self {
            Self::SignedIn(session) | Self::Recovering(session) => Self::Recovering(session),
            other => other,
        }
    }

    /// The widget is online again as the session's visitor: `Recovering` becomes `SignedIn`, its failures
    /// forgotten. Every other phase is the next phase of itself.
    fn regain_session(self) -> Self {
        match self {
            Self::SignedIn(mut session) | Self::Recovering(mut session) => {
                session.failures = 0;
                Self::SignedIn(session)
            }
            other => other,
        }
    }
}

/// Who the next `online` must be for, and where to say it came.
struct OnlineWaiter {
    /// The chat id the token names; `None` accepts any signed-in visitor (an opaque token, or a guest).
    user: Option<String>,
    sender: oneshot::Sender<Option<String>>,
}

/// The widget, as this object sees it.
#[derive(Default)]
struct Link {
    /// Our `onAuthStateChanged` listener on the widget; dropping it removes it.
    listener: Option<Listener>,
    /// The widget's `logout`, `dispose`, `reInit` and `restart`, wrapped to tell us when the page calls them.
    watch: Option<Watch>,
    /// Whom the widget last reported online (`None` since its last `offline`).
    online: Option<String>,
    /// The chat id we last asked the widget to sign in (`None` for a guest or an opaque token).
    asked: Option<String>,
    waiter: Option<OnlineWaiter>,
    /// Told when the widget reports `offline`: its `logout()` Promise may never settle, the event does.
    offline: Option<oneshot::Sender<()>>,
    /// The widget's `signInWithCustomToken` Promise while it is under way.
    signing_in: Option<Promise>,
    /// `logout()` calls are being made.
    leaving: bool,
}

/// `Link::leaving` for as long as this lives: also when the task making the `logout()` calls is stopped between two.
struct Leaving<'a>(&'a RefCell<Link>);

impl<'a> Leaving<'a> {
    fn start(link: &'a RefCell<Link>) -> Self {
        link.borrow_mut().leaving = true;
        Self(link)
    }
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().leaving = false;
    }
}

/// One sign-in: where its token comes from (or the token, already fetched there), and whether to tell the other
/// tabs when it succeeds.
struct Attempt {
    source: Rc<TokenSource>,
    token: Option<SiteToken>,
    announce: bool,
}

/// How a `signIn()` under way ends early.
type Interrupt = oneshot::Sender<Result<AuthState, AuthError>>;

pub(crate) struct Machine {
    options: Options,
    state: RefCell<AuthState>,
    listeners: RefCell<Vec<(u32, Function)>>,
    next_listener: Cell<u32>,
    phase: RefCell<Phase>,
    /// Another tab's sign-in being followed (its token request); stopped with the phase (see `stop`).
    following: RefCell<Option<Task>>,
    link: RefCell<Link>,
    /// The site's other tabs (`syncTabs`).
    tabs: RefCell<Option<Tabs>>,
    /// This object, for the keep-alive.
    me: Weak<Machine>,
    /// A strong reference to this object while its phase has work (`Phase::has_work`): the page may let go
    /// of its wrapper, and the sign-in or the session must go on until `signOut()` or `free()`.
    keep_alive: RefCell<Option<Rc<Machine>>>,
}

/// How long one `logout()` call is given before it is made again (see `leave_widget`).
const LOGOUT_WAIT_MS: u32 = 500;

/// A Promise settled by `work`; one copy of the glue for every kind of work.
fn promise_of(work: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>) -> Promise {
    future_to_promise(work)
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

impl Machine {
    /// A machine for `options`, idle, with its tab channel open when `syncTabs` is on.
    pub(crate) fn new(options: Options) -> Rc<Self> {
        let sync_tabs = options.sync_tabs;
        let machine = Rc::new_cyclic(|me| Machine {
            options,
            state: RefCell::new(AuthState::idle()),
            listeners: RefCell::new(Vec::new()),
            next_listener: Cell::new(0),
            phase: RefCell::new(Phase::Idle),
            following: RefCell::new(None),
            link: RefCell::default(),
            tabs: RefCell::new(None),
            me: me.clone(),
            keep_alive: RefCell::new(None),
        });
        if sync_tabs {
            let weak = Rc::downgrade(&machine);
            *machine.tabs.borrow_mut() = Tabs::open(&machine.options.project_id, move |message| {
                if let Some(machine) = weak.upgrade() {
                    machine.on_tab_message(message);
                }
            });
        }
        machine
    }

    /// `signIn(options)`: see `TiledeskAuth::sign_in`.
    pub(crate) fn sign_in_with(self: &Rc<Self>, options: &JsValue) -> Promise {
        let source = match self.options.sign_in_source(options) {
            Ok(source) => source,
            Err(err) => return Promise::reject(&err.to_js()),
        };
        if source.is_none()
            && let Phase::SigningIn(under_way) = &*self.phase.borrow()
        {
            return under_way.promise.clone();
        }
        let source = source.unwrap_or_else(|| Rc::clone(&self.options.source));
        Rc::clone(self).start_sign_in(source, None, true)
    }

    /// Adds a state listener; returns the function that removes it.
    pub(crate) fn add_listener(self: &Rc<Self>, listener: Function) -> JsValue {
        let id = self.next_listener.get();
        self.next_listener.set(id + 1);
        self.listeners.borrow_mut().push((id, listener));
        let weak = Rc::downgrade(self);
        Closure::<dyn FnMut()>::new(move || {
            if let Some(machine) = weak.upgrade() {
                machine.listeners.borrow_mut().retain(|(other, _)| *other != id);
            }
        })
        .into_js_value()
    }

    /// The state, as the page gets it.
    pub(crate) fn state_js(&self) -> JsValue {
        self.state.borrow().to_js()
    }

    /// `free()`: every timer and listener of this object goes, and its tab channel closes; a sign-in under way
    /// rejects with `aborted`. The widget is left as it is.
    pub(crate) fn shutdown(&self) {
        let interrupt = self.stop();
        self.listeners.borrow_mut().clear();
        self.tabs.borrow_mut().take();
        let link = std::mem::take(&mut *self.link.borrow_mut());
        drop(link);
        if let Some(interrupt) = interrupt {
            interrupt.send(Err(AuthError::Aborted));
        }
    }

    /// Replaces the phase and returns the old one; holds this object alive while the new phase has work.
    fn replace_phase(&self, phase: Phase) -> Phase {
        let keep = if phase.has_work() { self.me.upgrade() } else { None };
        let old = std::mem::replace(&mut *self.phase.borrow_mut(), phase);
        let released = self.keep_alive.replace(keep);
        // The last reference may be the keep-alive: it goes after every borrow has been given back.
        drop(released);
        old
    }

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

    fn current(&self) -> AuthState {
        self.state.borrow().clone()
    }

    fn set_phase(&self, phase: Phase) {
        drop(self.replace_phase(phase));
    }

    /// Moves to the phase `transition` makes of the current one (it takes the phase and returns the next);
    /// returns whether the next one holds a session.
    fn step(&self, transition: fn(Phase) -> Phase) -> bool {
        let current = std::mem::replace(&mut *self.phase.borrow_mut(), Phase::Idle);
        let next = transition(current);
        let has_session = next.has_session();
        self.set_phase(next);
        has_session
    }

    /// Stops everything under way (the phase's handles and tasks dropped, a tab being followed, the wait for
    /// `online` ended) and returns the interrupt of the sign-in under way, for the caller to settle it. The phase is
    /// `Idle` after.
    fn stop(&self) -> Option<Interrupt> {
        let following = self.following.borrow_mut().take();
        drop(following);
        self.link.borrow_mut().waiter.take();
        match self.replace_phase(Phase::Idle) {
            Phase::SigningIn(under_way) => Some(under_way.interrupt),
            _ => None,
        }
    }

    fn tell(&self, message: &Message) {
        if let Some(tabs) = self.tabs.borrow().as_ref() {
            tabs.say(message);
        }
    }

    /// Starts a sign-in with `source` (or with `token`, already fetched from it); `announce`: tell the other
    /// tabs when it succeeds (not for a sign-in that follows another tab).
    fn start_sign_in(
        self: Rc<Self>,
        source: Rc<TokenSource>,
        token: Option<SiteToken>,
        announce: bool,
    ) -> Promise {
        if let Some(replaced) = self.stop() {
            replaced.send(Err(AuthError::Replaced));
        }
        let (interrupt, interrupted) = oneshot::channel();
        let (alive, stopped) = oneshot::channel::<()>();
        let inner = Rc::clone(&self);
        let promise = promise_of(Box::pin(async move {
            let interrupted = async move { interrupted.await.unwrap_or(Err(AuthError::Aborted)) };
            let signing_in = async {
                let attempt = Attempt {
                    source,
                    token,
                    announce,
                };
                Rc::clone(&inner).sign_in(attempt).await
            };
            // Once the sign-in's phase is gone (a sign-out, another sign-in, `free()`), the sign-in takes no
            // further step, and the outcome is the interrupt's, whenever that comes (a sign-out's, once the widget
            // is left).
            let work = async move {
                let outcome = first(
                    async move {
                        stopped.await;
                        None
                    },
                    async move { Some(signing_in.await) },
                )
                .await;
                match outcome {
                    Some(result) => result,
                    None => std::future::pending().await,
                }
            };
            first(interrupted, work)
                .await
                .map(|state| state.to_js())
                .map_err(|e| e.to_js())
        }));
        self.set_phase(Phase::SigningIn(SigningIn {
            promise: promise.clone(),
            interrupt,
            _alive: alive,
        }));
        promise
    }

    /// Signs out here; `announce`: tell the other tabs (not when this sign-out is theirs).
    ///
    /// The Promise settles when the sign-out is done, or when another sign-in, sign-out or `free()` replaced it (the
    /// widget is theirs then); with the signed-out state either way.
    pub(crate) fn sign_out(self: Rc<Self>, announce: bool) -> Promise {
        if let Some(session) = self.phase.borrow_mut().session_mut() {
            token::end_login_session(&session.source);
        }
        let interrupt = self.stop();
        if announce {
            self.tell(&Message::SignedOut);
        }
        let (done, finished) = oneshot::channel::<()>();
        let machine = Rc::clone(&self);
        let task = Task::spawn(async move {
            // A widget sign-in under way would store its session after we cleared it: let it finish first.
            let pending = machine.link.borrow_mut().signing_in.take();
            if let Some(pending) = pending {
                let _ = with_timeout(machine.options.timeout_ms, "the widget to sign in", async {
                    let _ = JsFuture::from(pending).await;
                    Ok(())
                })
                .await;
            }
            machine.leave_widget().await;
            // Replaces this task's own phase: this is its last step.
            machine.set_phase(Phase::SignedOut(None));
            machine.set_state(AuthState::of(Status::SignedOut));
            done.send(());
        });
        self.set_phase(Phase::SigningOut(task));
        promise_of(Box::pin(async move {
            let _ = finished.await;
            let state = AuthState::of(Status::SignedOut);
            if let Some(interrupt) = interrupt {
                interrupt.send(Ok(state.clone()));
            }
            Ok(state.to_js())
        }))
    }

    /// What another tab said.
    fn on_tab_message(self: Rc<Self>, message: Message) {
        match message {
            Message::SignedOut => {
                if !self.phase.borrow().at_rest() {
                    let _ = Rc::clone(&self).sign_out(false);
                }
            }
            Message::SignedIn { user } => {
                let here = match &*self.phase.borrow() {
                    // Its own sign-in decides.
                    Phase::SigningIn(_) => return,
                    Phase::SignedIn(session) | Phase::Recovering(session) => Some(session.user.clone()),
                    _ => None,
                };
                if here.as_ref() != Some(&user) {
                    let task = Task::spawn(Rc::clone(&self).follow(user));
                    let previous = self.following.borrow_mut().replace(task);
                    drop(previous);
                }
            }
        }
    }

    /// Another tab signed `user` in: this tab asks its own token source, and signs in only if it names them too
    /// (a tab holding an earlier visitor's credentials must not bring that visitor back). Never with credentials:
    /// a message on the channel proves nothing (any script of the origin can post one), so it must not make this
    /// tab post a password; a password login in the other tab gave the browser a login session, which `{}` uses.
    ///
    /// It runs as the machine's `following` task, which `stop()` drops: a sign-in or sign-out here meanwhile ends it.
    async fn follow(self: Rc<Self>, user: Option<String>) {
        let source = TokenSource::after_sign_in(&self.options.source);
        let token = with_timeout(self.options.timeout_ms, "the site's token endpoint", async {
            token::fetch(&source).await
        })
        .await;
        if let Ok(token) = token
            && token.user_id == user
        {
            let _ = self.start_sign_in(source, Some(token), false);
        }
    }

    /// Logs the widget out, clears its stored session and hides it; settles within `timeoutMs`.
    ///
    /// The widget's `logout()` returns nothing when nobody is logged in, and a Promise that never settles (and
    /// logs nobody out) while its chat connection has not subscribed yet. So each call waits for the first of its
    /// Promise, its `offline` report, or half a second, and is made again while the widget still reports someone
    /// online. It runs within a task of the phase that wants the widget left (a sign-out, a sign-in switching
    /// visitors, a refresh): when that phase goes, the calls stop.
    async fn leave_widget(&self) {
        let _leaving = Leaving::start(&self.link);
        let started = js_sys::Date::now();
        loop {
            if let Called::Promise(logout) = widget::call("logout", &JsValue::UNDEFINED) {
                let (sender, offline) = oneshot::channel();
                self.link.borrow_mut().offline = Some(sender);
                let logged_out = async {
                    let _ = JsFuture::from(logout).await;
                };
                let reported = async {
                    let _ = offline.await;
                };
                first(first(logged_out, reported), sleep(LOGOUT_WAIT_MS)).await;
                self.link.borrow_mut().offline.take();
            }
            let elapsed = js_sys::Date::now() - started;
            if self.link.borrow().online.is_none()
                || elapsed + f64::from(LOGOUT_WAIT_MS) > f64::from(self.options.timeout_ms)
            {
                break;
            }
        }
        widget::hide();
        session::clear(&self.options.project_id);
    }

    async fn sign_in(self: Rc<Self>, attempt: Attempt) -> Result<AuthState, AuthError> {
        self.set_state(AuthState {
            status: Status::Loading,
            error: None,
            ..self.current()
        });
        match Rc::clone(&self).try_sign_in(attempt).await {
            Ok(state) => Ok(state),
            Err(err) => self.fail(err).await,
        }
    }

    async fn try_sign_in(self: Rc<Self>, attempt: Attempt) -> Result<AuthState, AuthError> {
        let Attempt {
            source,
            token,
            announce,
        } = attempt;
        if !widget::is_booted() {
            // Before the loader boots: a stored token would be re-used (expired: the widget vanishes on the 401;
            // another visitor's: the widget signs in as them).
            session::clear(&self.options.project_id);
        }
        // The token is fetched while the loader loads, by a task this sign-in owns: when the sign-in is dropped
        // (its phase gone), so is the task, and the request takes no further step.
        let (sender, fetched) = oneshot::channel();
        let _fetching = match token {
            Some(token) => {
                sender.send(Ok(token));
                None
            }
            None => {
                let timeout_ms = self.options.timeout_ms;
                let source = Rc::clone(&source);
                Some(Task::spawn(async move {
                    let result = with_timeout(timeout_ms, "the site's token endpoint", async {
                        token::fetch(&source).await
                    })
                    .await;
                    sender.send(result);
                }))
            }
        };
        self.widget_ready().await?;
        self.attach();
        let token = fetched
            .await
            .unwrap_or(Err(AuthError::Timeout("the site's token endpoint")))?;
        let user_id = self.enter_widget(&token, announce).await?;
        self.signed_in(&source, &token, user_id, announce);
        Ok(self.current())
    }

    /// Signs the widget in with `token`. When it holds someone else (another visitor, a guest), they are logged
    /// out first, so nothing of theirs stays on screen or keeps loading (`announce`: and the other tabs sign out).
    async fn enter_widget(&self, token: &SiteToken, announce: bool) -> Result<Option<String>, AuthError> {
        let online = self.link.borrow().online.clone();
        if token.user_id.is_some() && online.is_some() && online != token.user_id {
            if announce {
                self.tell(&Message::SignedOut);
            }
            self.leave_widget().await;
        }
        self.sign_in_widget(token).await
    }

    /// The widget reported the visitor online with `token`: shown, `authenticated`, refresh scheduled.
    fn signed_in(
        self: &Rc<Self>,
        source: &Rc<TokenSource>,
        token: &SiteToken,
        user_id: Option<String>,
        announce: bool,
    ) {
        self.set_phase(Phase::SignedIn(Session {
            // Refreshes use the login session the credentials got, not the credentials again.
            source: TokenSource::after_sign_in(source),
            user: user_id.clone(),
            expires_at: token.expires_at,
            refresh: Refresh::Off,
            failures: 0,
        }));
        self.schedule_refresh(token.expires_at);
        if announce {
            self.tell(&Message::SignedIn {
                user: user_id.clone(),
            });
        }
        // Always: a widget that lost its session hid itself.
        widget::show();
        self.set_state(AuthState {
            status: Status::Authenticated,
            user_id,
            expires_at: token.expires_at,
            error: None,
        });
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
        // The script's listeners live as long as this wait: removed once the widget booted or the wait gave up.
        let _on_error = inserted.then(|| {
            let sender = Rc::clone(&sender);
            ScriptListener::new(&script, "error", move |_| {
                if let Some(sender) = sender.borrow_mut().take() {
                    sender.send(Err(AuthError::WidgetLoad(url.clone())));
                }
            })
        });
        let _nudge = (self.options.boot == Boot::Now).then(|| {
            if !inserted {
                // The page's own loader may have run already.
                widget::nudge_boot();
            }
            // The loader waits for an interaction before it boots: once it has run, give it one.
            ScriptListener::new(&script, "load", |_| widget::nudge_boot())
        });
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

    /// Puts our `onAuthStateChanged` listener on the widget, and once it booted, the watch on its life methods;
    /// again on the new widget after the page's `reInit` or `restart` replaced it.
    fn attach(self: &Rc<Self>) {
        let (listening, watching) = {
            let link = self.link.borrow();
            (
                link.listener.as_ref().is_some_and(Listener::is_current),
                link.watch.as_ref().is_some_and(Watch::is_current),
            )
        };
        if !listening {
            let weak = Rc::downgrade(self);
            let listener = Listener::new("onAuthStateChanged", move |event: JsValue| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_auth_state(&event);
                }
            });
            let old = std::mem::replace(&mut self.link.borrow_mut().listener, listener);
            drop(old);
        }
        if !watching {
            let weak = Rc::downgrade(self);
            let watch =
                Watch::new(move |event| weak.upgrade().is_some_and(|inner| inner.on_life_event(event)));
            if watch.is_some() {
                let old = std::mem::replace(&mut self.link.borrow_mut().watch, watch);
                // Dropped once the call that may be running in one of its wrappers has returned.
                spawn_local(async move { drop(old) });
            }
        }
    }

    /// The page (or the loader) called one of the widget's life methods.
    ///
    /// `logout()` and `dispose()`: the page ended the visitor's chat; the module reports `signed_out`, stops its
    /// sign-in or session (a sign-in under way resolves with that state, as with `signOut()`) and does not sign
    /// anyone in again. `reInit()` and `restart()`: a new widget without the visitor replaced the old one; the module
    /// listens to the new one and, when it had a session, signs the same visitor in again with a fresh token.
    /// The loader's `dispose()` after Tiledesk refused the session: with a session, the module takes it over (the
    /// widget stays, hidden) and signs the visitor in again with a fresh token, retrying with a growing pause (the
    /// service may still hold the secret Tiledesk no longer has); returns `true` then.
    fn on_life_event(self: &Rc<Self>, event: LifeEvent) -> bool {
        match event {
            LifeEvent::SessionRefused => {
                if !self.step(Phase::lose_session) {
                    return false;
                }
                self.enter_error(&AuthError::SignInRejected(
                    "Tiledesk refused the widget's session; signing in again".to_owned(),
                ));
                self.refresh_now();
                true
            }
            LifeEvent::LoggedOut | LifeEvent::Disposed => {
                if self.phase.borrow().at_rest() {
                    return false;
                }
                let interrupt = self.stop();
                self.set_phase(Phase::SignedOut(None));
                if event == LifeEvent::Disposed {
                    // The widget is gone, its stored session is not: the next visitor of this browser must not get it.
                    session::clear(&self.options.project_id);
                }
                let state = AuthState::of(Status::SignedOut);
                self.set_state(state.clone());
                if let Some(interrupt) = interrupt {
                    interrupt.send(Ok(state));
                }
                false
            }
            LifeEvent::Replaced => {
                {
                    let mut link = self.link.borrow_mut();
                    link.online = None;
                    link.signing_in = None;
                }
                self.attach();
                // A session: signed in again on the new widget, once it boots.
                if self.step(Phase::lose_session) {
                    self.refresh_now();
                }
                false
            }
        }
    }

    fn on_auth_state(self: &Rc<Self>, event: &JsValue) {
        let detail = Reflect::get(event, &"detail".into()).unwrap_or(JsValue::UNDEFINED);
        let field = |name: &str| Reflect::get(&detail, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let kind = field("event").as_string().unwrap_or_default();
        let logged = field("isLogged").as_bool().unwrap_or(false);
        let user_id = field("user_id").as_string();
        if kind == "online" && logged {
            let (ours, leaving, waiter) = {
                let mut link = self.link.borrow_mut();
                link.online = user_id.clone();
                let waiting_for_it = link
                    .waiter
                    .as_ref()
                    .is_some_and(|w| w.user.is_none() || w.user == user_id);
                let waiter = if waiting_for_it { link.waiter.take() } else { None };
                (user_id.is_some() && link.asked == user_id, link.leaving, waiter)
            };
            if let Some(waiter) = waiter {
                waiter.sender.send(user_id);
                return;
            }
            let recovering_idle = match &mut *self.phase.borrow_mut() {
                Phase::SignedOut(undo) if ours && !leaving => {
                    // A sign-in that was under way when the visitor signed out has completed: undo it.
                    let machine = Rc::clone(self);
                    *undo = Some(Task::spawn(async move { machine.leave_widget().await }));
                    false
                }
                // The widget reconnected by itself (its chat connection came back).
                Phase::Recovering(session) => ours && !session.refreshing(),
                _ => false,
            };
            if recovering_idle {
                self.recovered();
            }
        } else if kind == "offline" && !logged {
            let offline = {
                let mut link = self.link.borrow_mut();
                link.online = None;
                link.offline.take()
            };
            if let Some(sender) = offline {
                sender.send(());
            }
            if !self.options.refresh {
                return;
            }
            // We expected the visitor online: the session is lost; sign in again now.
            let lost = matches!(*self.phase.borrow(), Phase::SignedIn(_)) && self.step(Phase::lose_session);
            if lost {
                self.refresh_now();
            }
        }
    }

    /// The widget is online again as our visitor with the token it has: shown and `authenticated`, and that
    /// token refreshed on schedule.
    fn recovered(self: &Rc<Self>) {
        if !self.step(Phase::regain_session) {
            return;
        }
        let (user, expires_at) = match &*self.phase.borrow() {
            Phase::SignedIn(session) => (session.user.clone(), session.expires_at),
            _ => return,
        };
        self.schedule_refresh(expires_at);
        widget::show();
        self.set_state(AuthState {
            status: Status::Authenticated,
            error: None,
            user_id: user,
            expires_at,
        });
    }

    /// `signInWithCustomToken` called directly, its Promise awaited, then the `online` report for the token's
    /// visitor awaited.
    async fn sign_in_widget(&self, token: &SiteToken) -> Result<Option<String>, AuthError> {
        let (sender, online) = oneshot::channel();
        {
            let mut link = self.link.borrow_mut();
            link.asked = token.user_id.clone();
            link.waiter = Some(OnlineWaiter {
                user: token.user_id.clone(),
                sender,
            });
        }
        let result = match widget::call("signInWithCustomToken", &JsValue::from(token.value.as_str())) {
            Called::Missing => Err(AuthError::SignInRejected(
                "the widget has no signInWithCustomToken method".to_owned(),
            )),
            Called::Threw(e) => Err(AuthError::SignInRejected(widget::message_of(&e))),
            Called::NotAPromise => Ok(()),
            Called::Promise(promise) => {
                self.link.borrow_mut().signing_in = Some(promise.clone());
                let result = with_timeout(self.options.timeout_ms, "the widget to sign in", async {
                    JsFuture::from(promise)
                        .await
                        .map(|_| ())
                        .map_err(|e| AuthError::SignInRejected(widget::message_of(&e)))
                })
                .await;
                self.link.borrow_mut().signing_in.take();
                result
            }
        };
        if let Err(err) = result {
            self.link.borrow_mut().waiter.take();
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
                self.set_phase(Phase::Anonymous);
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
        self.set_phase(Phase::Failed);
        self.enter_error(&err);
        Err(err)
    }

    /// `signInAnonymous`, then the widget's `online` for the guest; returns the guest's chat id.
    async fn sign_in_anonymously(&self) -> Result<Option<String>, AuthError> {
        session::clear(&self.options.project_id);
        let (sender, online) = oneshot::channel();
        {
            let mut link = self.link.borrow_mut();
            link.asked = None;
            link.waiter = Some(OnlineWaiter { user: None, sender });
        }
        if let Called::Promise(promise) = widget::call("signInAnonymous", &JsValue::UNDEFINED) {
            let signed = with_timeout(self.options.timeout_ms, "the widget to sign in", async {
                JsFuture::from(promise)
                    .await
                    .map_err(|e| AuthError::SignInRejected(widget::message_of(&e)))
            })
            .await;
            if let Err(err) = signed {
                self.link.borrow_mut().waiter.take();
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
        self.set_state(AuthState {
            status: Status::Error,
            error: Some(ErrorInfo::from(err)),
            ..self.current()
        });
    }

    fn schedule_refresh(self: &Rc<Self>, expires_at: Option<f64>) {
        let Some(expires_at) = expires_at.filter(|_| self.options.refresh) else {
            return;
        };
        self.schedule_refresh_in(refresh_delay_ms(now_secs(), expires_at), Refresh::Scheduled);
    }

    /// The session's next refresh in `delay_ms` (`Scheduled` or `Backoff`); no session, no timer.
    fn schedule_refresh_in(self: &Rc<Self>, delay_ms: u32, state: fn(Timeout) -> Refresh) {
        let weak = Rc::downgrade(self);
        if let Some(session) = self.phase.borrow_mut().session_mut() {
            session.refresh = state(Timeout::new(delay_ms, move || {
                if let Some(machine) = weak.upgrade() {
                    machine.refresh_now();
                }
            }));
        }
    }

    /// Starts the session's refresh, unless one is under way; the task belongs to the session (a sign-out, another
    /// sign-in or `free()` drops it, and it takes no further step).
    fn refresh_now(self: &Rc<Self>) {
        let mut phase = self.phase.borrow_mut();
        if let Some(session) = phase.session_mut().filter(|s| !s.refreshing()) {
            // The timer this may be called from goes with the old state: dropped after its callback returns.
            let previous = std::mem::replace(
                &mut session.refresh,
                Refresh::Running(Task::spawn(Rc::clone(self).refresh())),
            );
            drop(phase);
            drop(previous);
        }
    }

    /// Signs in again with a fresh token from the session's source. When the site refuses the visitor (401 or 403)
    /// the session ends: `error` (`auth_rejected`), then signed out as by `signOut()`, in every tab. On another
    /// failure it tries again, sooner while the widget still holds a valid session, and with a growing pause (up to
    /// 30 s) once it does not, until it works or the visitor signs out. A token naming another visitor (the site's session changed hands) switches the
    /// widget to them, as `signIn` does.
    ///
    /// It runs as the session's `Refresh::Running` task: when the session goes (sign-out, another sign-in, `free()`),
    /// the refresh takes no further step, so nothing here checks whether it is still wanted.
    async fn refresh(self: Rc<Self>) {
        let (source, user) = {
            let mut phase = self.phase.borrow_mut();
            let Some(session) = phase.session_mut() else {
                return;
            };
            (Rc::clone(&session.source), session.user.clone())
        };
        let result = async {
            let token = with_timeout(self.options.timeout_ms, "the site's token endpoint", async {
                token::fetch(&source).await
            })
            .await?;
            if !widget::is_booted() {
                // A widget the page's `reInit` or `restart` put in place of the one the visitor was signed in to.
                self.widget_ready().await?;
            }
            self.attach();
            let user_id = self.enter_widget(&token, true).await?;
            Ok::<_, AuthError>((token, user_id))
        }
        .await;
        match result {
            Ok((token, user_id)) => {
                let changed = user_id != user;
                self.signed_in(&source, &token, user_id, changed);
            }
            Err(err @ AuthError::AuthRejected(_)) => {
                // The site says the visitor is no longer signed in there (logged out, password changed, account
                // closed): the chat session ends with the site's, in every tab, and nothing is asked again.
                self.enter_error(&err);
                drop(Rc::clone(&self).sign_out(true));
            }
            Err(err) => {
                let (failures, left, alive) = {
                    let mut phase = self.phase.borrow_mut();
                    let signed_in = matches!(*phase, Phase::SignedIn(_));
                    let Some(session) = phase.session_mut() else {
                        return;
                    };
                    session.failures += 1;
                    let left = session.expires_at.map_or(0.0, |exp| exp - now_secs());
                    (session.failures, left, signed_in && left > 2.0)
                };
                if !alive {
                    self.step(Phase::lose_session);
                    self.enter_error(&err);
                }
                // Replaces this task's own `Running` state: this is its last step.
                self.schedule_refresh_in(retry_delay_ms(failures, left, alive), Refresh::Backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::{Phase, Refresh, Session, refresh_delay_ms, retry_delay_ms};
    use crate::options::TokenSource;

    fn session(failures: u32) -> Session {
        Session {
            source: Rc::new(TokenSource::Endpoint {
                url: "/auth".to_owned(),
                credentials: None,
                with_credentials: true,
                login_session: false,
            }),
            user: Some("p_7".to_owned()),
            expires_at: Some(1000.0),
            refresh: Refresh::Off,
            failures,
        }
    }

    #[test]
    fn a_lost_session_recovers_as_the_same_session_with_its_failures_forgotten() {
        let Phase::Recovering(lost) = Phase::SignedIn(session(2)).lose_session() else {
            panic!("a signed-in session that is lost is recovering");
        };
        assert_eq!((lost.user.as_deref(), lost.failures), (Some("p_7"), 2));
        let Phase::SignedIn(back) = Phase::Recovering(lost).regain_session() else {
            panic!("a recovering session that is regained is signed in");
        };
        assert_eq!((back.user.as_deref(), back.failures), (Some("p_7"), 0));
        assert!(
            matches!(Phase::Recovering(session(1)).lose_session(), Phase::Recovering(s) if s.failures == 1)
        );
    }

    #[test]
    fn a_phase_without_a_session_is_its_own_next_phase() {
        for transition in [Phase::lose_session, Phase::regain_session] {
            assert!(matches!(transition(Phase::Idle), Phase::Idle));
            assert!(matches!(transition(Phase::Failed), Phase::Failed));
            assert!(matches!(transition(Phase::Anonymous), Phase::Anonymous));
            assert!(matches!(
                transition(Phase::SignedOut(None)),
                Phase::SignedOut(None)
            ));
            assert!(!transition(Phase::Failed).has_session());
            assert!(transition(Phase::SignedIn(session(0))).has_session());
        }
    }

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
