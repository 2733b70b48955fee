//! The page's Tiledesk widget: settings, the command-queue stub, the loader script, its methods and events.
//!
//! Everything goes through `Reflect` on `window` at the moment of use, because `window.Tiledesk` is a queue
//! stub before boot and a different function after, and `window.tiledesk` gains its methods late
//! (`docs/tiledesk.md`, "The page snippet" and "Methods and events").
//!
//! The widget lives in an iframe: the Promises its methods return and the errors they reject with belong to the
//! iframe's realm, so `instanceof Promise` and `instanceof Error` are false here. [`call`] treats any thenable as
//! a Promise and [`message_of`] reads an error by its properties.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Event, EventTarget, HtmlScriptElement, Window};

use crate::error::{AuthError, decimal};

/// The id the loader uses to find its own base URL.
pub(crate) const SCRIPT_ID: &str = "tiledesk-jssdk";

fn window() -> Option<Window> {
    web_sys::window()
}

fn global(name: &str) -> JsValue {
    window()
        .and_then(|w| Reflect::get(&w, &name.into()).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

/// `window.tiledesk`, once the loader created it (with `on`, maybe not yet the other methods).
fn widget_object() -> Option<Object> {
    let value = global("tiledesk");
    if !value.is_object() {
        return None;
    }
    let on = Reflect::get(&value, &"on".into()).ok()?;
    on.is_function().then(|| value.unchecked_into())
}

fn method(name: &str) -> Option<(Object, Function)> {
    let object = widget_object()?;
    let method = Reflect::get(&object, &name.into())
        .ok()?
        .dyn_into::<Function>()
        .ok()?;
    Some((object, method))
}

/// Whether the widget has booted: its methods exist and can be called directly.
pub(crate) fn is_booted() -> bool {
    method("signInWithCustomToken").is_some()
}

/// Whether `window.Tiledesk` is still the snippet's queue.
fn is_queuing() -> bool {
    let stub = global("Tiledesk");
    stub.is_function() && Reflect::get(&stub, &"q".into()).is_ok_and(|q| Array::is_array(&q))
}

/// A Promise of `value` if it is a thenable, whatever realm it comes from.
pub(crate) fn thenable(value: &JsValue) -> Option<Promise> {
    if !(value.is_object() || value.is_function()) {
        return None;
    }
    let then = Reflect::get(value, &"then".into()).ok()?;
    then.is_function().then(|| Promise::resolve(value))
}

/// What a rejection or a thrown value says, read by property: the widget's errors are Angular
/// `HttpErrorResponse`s from its iframe (`status`, `message`), not this realm's `Error`s.
pub(crate) fn message_of(value: &JsValue) -> String {
    if let Some(text) = value.as_string() {
        return text;
    }
    let field = |name: &str| {
        Reflect::get(value, &name.into())
            .ok()
            .filter(|v| !v.is_undefined())
    };
    let message = field("message").and_then(|m| m.as_string());
    // A whole number, written by `decimal` (an HTTP status; anything else is left out of the message).
    let status = field("status")
        .and_then(|s| s.as_f64())
        .filter(|s| *s >= 0.0)
        .map(|s| s as u32);
    match (status, message) {
        (Some(status), Some(message)) => [&message, " (status ", &decimal(status), ")"].concat(),
        (Some(status), None) => ["status ", &decimal(status)].concat(),
        (None, Some(message)) => message,
        (None, None) => "rejected".to_owned(),
    }
}

/// What calling a widget method gave.
pub(crate) enum Called {
    /// The widget has no such method (not booted, or another loader).
    Missing,
    /// It threw.
    Threw(JsValue),
    /// It returned something that is not a thenable (`undefined`, for `logout()` with nobody logged in).
    NotAPromise,
    /// It returned a thenable.
    Promise(Promise),
}

thread_local! {
    /// Set while the module itself calls a widget method, so that [`Watch`] tells the page's calls from ours.
    static OURS: Cell<bool> = const { Cell::new(false) };
}

/// Calls `window.tiledesk[name](arg)`.
pub(crate) fn call(name: &str, arg: &JsValue) -> Called {
    let Some((object, method)) = method(name) else {
        return Called::Missing;
    };
    OURS.with(|ours| ours.set(true));
    let result = method.call1(&object, arg);
    OURS.with(|ours| ours.set(false));
    match result {
        Err(thrown) => Called::Threw(thrown),
        Ok(value) => thenable(&value).map_or(Called::NotAPromise, Called::Promise),
    }
}

/// `window.Tiledesk(name, arg)` while it is a queue: the call is replayed at `onBeforeInit`.
fn enqueue(name: &str, arg: &JsValue) {
    if let Ok(stub) = global("Tiledesk").dyn_into::<Function>() {
        let _ = stub.call2(&JsValue::NULL, &name.into(), arg);
    }
}

/// Hides the widget now if it booted, else queues `hide` (so nothing flashes at boot).
pub(crate) fn hide() {
    if is_booted() {
        let _ = call("hide", &JsValue::UNDEFINED);
    } else if is_queuing() {
        enqueue("hide", &JsValue::UNDEFINED);
    }
}

/// Shows the widget, if it booted.
pub(crate) fn show() {
    let _ = call("show", &JsValue::UNDEFINED);
}

/// Writes the settings, installs the queue stub and the loader script if the page has none.
/// Returns the loader's script element, inserted by this call or already in the page.
pub(crate) fn prepare(
    project_id: &str,
    extra: Option<&Object>,
    widget_url: &str,
) -> Result<(HtmlScriptElement, bool), AuthError> {
    let window = window().ok_or_else(|| AuthError::WidgetLoad("no window".to_owned()))?;
    let mut settings = global("tiledeskSettings");
    if !settings.is_object() {
        settings = Object::new().into();
        let _ = Reflect::set(&window, &"tiledeskSettings".into(), &settings);
    }
    if let Some(existing) = Reflect::get(&settings, &"projectid".into())
        .ok()
        .and_then(|v| v.as_string())
        && existing != project_id
    {
        return Err(AuthError::BadOptions(
            [
                "the page's tiledeskSettings.projectid is `",
                &existing,
                "`, not `",
                project_id,
                "`",
            ]
            .concat(),
        ));
    }
    if let Some(extra) = extra {
        Object::assign(settings.unchecked_ref(), extra);
    }
    let _ = Reflect::set(&settings, &"projectid".into(), &project_id.into());
    // We sign in and show ourselves: no anonymous auto-start, and no startHidden (it swallows the first show()).
    let _ = Reflect::set(&settings, &"autoStart".into(), &JsValue::FALSE);
    let _ = Reflect::set(&settings, &"startHidden".into(), &JsValue::FALSE);

    if global("Tiledesk").is_undefined() {
        install_stub(&window);
    }
    hide();

    let document = window
        .document()
        .ok_or_else(|| AuthError::WidgetLoad("no document".to_owned()))?;
    if let Some(existing) = document.get_element_by_id(SCRIPT_ID) {
        return existing
            .dyn_into::<HtmlScriptElement>()
            .map(|script| (script, false))
            .map_err(|_| AuthError::WidgetLoad(["#", SCRIPT_ID, " is not a script"].concat()));
    }
    let script: HtmlScriptElement = document
        .create_element("script")
        .map_err(|_| AuthError::WidgetLoad(widget_url.to_owned()))?
        .unchecked_into();
    script.set_id(SCRIPT_ID);
    script.set_async(true);
    script.set_src(widget_url);
    let parent = document
        .head()
        .map(web_sys::Node::from)
        .or_else(|| document.body().map(Into::into));
    parent
        .ok_or_else(|| AuthError::WidgetLoad(widget_url.to_owned()))?
        .append_child(&script)
        .map_err(|_| AuthError::WidgetLoad(widget_url.to_owned()))?;
    Ok((script, true))
}

/// Makes the loader boot without waiting for the visitor.
///
/// Tiledesk's loader does not boot when it runs: it waits for the first `scroll`, `mousedown`, `mousemove`,
/// `touchstart` or `keydown` on `document`, or 5 seconds. A `scroll` event dispatched on `document` once the
/// loader has run is that first interaction. Before the loader runs nothing listens, and after it started
/// nothing does either, so the nudge is harmless at any other time.
pub(crate) fn nudge_boot() {
    if let Some(document) = window().and_then(|w| w.document())
        && let Ok(event) = Event::new("scroll")
    {
        let _ = document.dispatch_event(&event);
    }
}

/// The standard snippet's stub: each call is pushed onto `window.Tiledesk.q` for the loader to replay.
/// It is page infrastructure, alive as long as the page, like the snippet's own function.
fn install_stub(window: &Window) {
    let stub = Closure::<dyn Fn(JsValue, JsValue)>::new(|name: JsValue, arg: JsValue| {
        let queue = Reflect::get(&global("Tiledesk"), &"q".into()).unwrap_or(JsValue::UNDEFINED);
        if let Some(queue) = queue.dyn_ref::<Array>() {
            queue.push(&Array::of2(&name, &arg));
        }
    })
    .into_js_value();
    let _ = Reflect::set(&stub, &"q".into(), &Array::new());
    let _ = Reflect::set(window, &"Tiledesk".into(), &stub);
}

/// Runs `callback` once, at the widget's `onBeforeInit`, after the queue has been replayed.
///
/// A queued `onBeforeInit` would be registered during its own dispatch and never run, so the hook goes in
/// through a queued `onLoadParams` callback (run at `onLoadParams`), or straight to `window.tiledesk.on`
/// when the loader already created `window.tiledesk`. The listener removes itself when it has run.
pub(crate) fn on_boot(callback: Box<dyn FnOnce()>) {
    let slot: Rc<RefCell<Option<Listener>>> = Rc::default();
    let callback = RefCell::new(Some(callback));
    let register = {
        let slot = Rc::clone(&slot);
        move || {
            let fired = Rc::clone(&slot);
            let listener = Listener::new("onBeforeInit", move |_| {
                // Removed once it has run; dropped after this call returns, not while it runs.
                let handle = fired.borrow_mut().take();
                wasm_bindgen_futures::spawn_local(async move { drop(handle) });
                if let Some(callback) = callback.borrow_mut().take() {
                    callback();
                }
            });
            *slot.borrow_mut() = listener;
        }
    };
    if widget_object().is_some() {
        register();
        return;
    }
    let register = RefCell::new(Some(register));
    let hook = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        if let Some(register) = register.borrow_mut().take() {
            register();
        }
    })
    .into_js_value();
    enqueue("onLoadParams", &hook);
}

/// A listener added with `window.tiledesk.on(name, ...)`; dropping it removes it.
///
/// `on` adds the listener to `window.tiledesk.tiledeskroot` (a `<chat-root>` element), so that is where it is
/// removed from; nowhere else would remove anything.
#[must_use = "dropping the handle removes the listener"]
pub(crate) struct Listener {
    root: Option<EventTarget>,
    name: &'static str,
    callback: Function,
    /// The Rust side of `callback`.
    closure: Option<Closure<dyn FnMut(JsValue)>>,
}

impl Listener {
    /// `window.tiledesk.on(name, handler)`; `None` when the widget object does not exist yet.
    pub(crate) fn new(name: &'static str, handler: impl FnMut(JsValue) + 'static) -> Option<Self> {
        let object = widget_object()?;
        let on = Reflect::get(&object, &"on".into())
            .ok()?
            .dyn_into::<Function>()
            .ok()?;
        let closure = Closure::<dyn FnMut(JsValue)>::new(handler);
        let callback: Function = closure.as_ref().unchecked_ref::<Function>().clone();
        on.call2(&object, &name.into(), &callback).ok()?;
        let root = Reflect::get(&object, &"tiledeskroot".into())
            .ok()
            .and_then(|r| r.dyn_into::<EventTarget>().ok());
        Some(Self {
            root,
            name,
            callback,
            closure: Some(closure),
        })
    }
}

impl Listener {
    /// Whether this listener is on the widget's current `<chat-root>`: `reInit` and `restart` replace the root (and
    /// `window.tiledesk` with it), and a listener on the old one hears nothing of the new widget.
    pub(crate) fn is_current(&self) -> bool {
        let current = widget_object().and_then(|o| Reflect::get(&o, &"tiledeskroot".into()).ok());
        match (&self.root, current) {
            (Some(root), Some(current)) => AsRef::<JsValue>::as_ref(root) == &current,
            // No root to compare (another loader): the one listener stays.
            _ => true,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        match &self.root {
            Some(root) => {
                let _ = root.remove_event_listener_with_callback(self.name, &self.callback);
            }
            // A loader without `tiledeskroot`: the function stays registered, so its Rust side must stay too
            // (it holds only a weak reference to the module's state, and does nothing once that is gone).
            None => {
                if let Some(closure) = self.closure.take() {
                    closure.forget();
                }
            }
        }
    }
}

/// What the page (or the loader, which disposes the widget when Tiledesk refuses its session) did to the widget by
/// calling one of its own methods: `logout`, `dispose`, `reInit` or `restart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LifeEvent {
    /// `logout()`: the widget signs its visitor out. Reported before the widget acts, so that its `offline` reports
    /// are known to be the page's.
    LoggedOut,
    /// `dispose()`: the widget's container is gone from the page. Reported after.
    Disposed,
    /// `reInit()` or `restart()`: a new widget (a new `<chat-root>`, a new `window.tiledesk`) replaces the old one,
    /// without the visitor. Reported after, when the new one exists.
    Replaced,
    /// `dispose()` called by the loader because Tiledesk refused the widget's session token (the project's secret
    /// was regenerated, or the token expired while the chat connection was down). Reported before: when the handler
    /// takes it over (returns `true`), the widget is not disposed, and the module signs the visitor in again.
    SessionRefused,
}

/// Whether the running call comes from Tiledesk's loader answering a refused session: the loader hides and disposes
/// the widget from the `load` handler of its `POST {projectid}/events` when that answers 401, and while a handler
/// runs, `window.event` is the event it handles (here the request's `load`, whose target is the request).
fn session_refused() -> bool {
    let event = global("event");
    let Some(request) = Reflect::get(&event, &"target".into())
        .ok()
        .filter(JsValue::is_object)
    else {
        return false;
    };
    let field = |name: &str| Reflect::get(&request, &name.into()).unwrap_or(JsValue::UNDEFINED);
    field("status").as_f64() == Some(401.0)
        && field("responseURL")
            .as_string()
            .is_some_and(|url| url.ends_with("/events"))
}

const WATCHED: [(&str, LifeEvent); 4] = [
    ("logout", LifeEvent::LoggedOut),
    ("dispose", LifeEvent::Disposed),
    ("reInit", LifeEvent::Replaced),
    ("restart", LifeEvent::Replaced),
];

type Wrapper = Closure<dyn FnMut(JsValue) -> Result<JsValue, JsValue>>;

/// The booted widget's life methods, each wrapped so that a call the module did not make is reported to it; the
/// wrappers call the widget's own method with the same argument and give back what it returns or throws. Dropping
/// the watch puts the widget's methods back where the wrappers are still in place.
#[must_use = "dropping the watch unwraps the widget's methods"]
pub(crate) struct Watch {
    object: Object,
    wrapped: Vec<(&'static str, Function, Wrapper)>,
}

impl Watch {
    /// Wraps the methods of the booted `window.tiledesk`; `None` before it booted.
    /// `handler` is told each event; for [`LifeEvent::SessionRefused`] it returns whether it takes it over.
    pub(crate) fn new(handler: impl Fn(LifeEvent) -> bool + 'static) -> Option<Self> {
        if !is_booted() {
            return None;
        }
        let object = widget_object()?;
        let handler: Rc<dyn Fn(LifeEvent) -> bool> = Rc::new(handler);
        let mut wrapped = Vec::new();
        for (name, event) in WATCHED {
            let Some(original) = Reflect::get(&object, &name.into())
                .ok()
                .and_then(|f| f.dyn_into::<Function>().ok())
            else {
                continue;
            };
            let (target, widget_method, handler) = (object.clone(), original.clone(), Rc::clone(&handler));
            let wrapper: Wrapper = Closure::new(move |arg: JsValue| {
                let page = !OURS.with(Cell::get);
                if page
                    && event == LifeEvent::Disposed
                    && session_refused()
                    && handler(LifeEvent::SessionRefused)
                {
                    return Ok(JsValue::UNDEFINED);
                }
                if page && event == LifeEvent::LoggedOut {
                    handler(event);
                }
                let result = widget_method.call1(&target, &arg);
                if page && event != LifeEvent::LoggedOut {
                    handler(event);
                }
                result
            });
            let _ = Reflect::set(&object, &name.into(), wrapper.as_ref());
            wrapped.push((name, original, wrapper));
        }
        Some(Self { object, wrapped })
    }

    /// Whether the watched widget is the page's current one (not one replaced by `reInit` or `restart`).
    pub(crate) fn is_current(&self) -> bool {
        AsRef::<JsValue>::as_ref(&self.object) == &global("tiledesk")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for (name, original, wrapper) in self.wrapped.drain(..) {
            let installed = Reflect::get(&self.object, &name.into()).unwrap_or(JsValue::UNDEFINED);
            if installed == *wrapper.as_ref() {
                let _ = Reflect::set(&self.object, &name.into(), &original);
            } else {
                // Something wrapped our wrapper in turn: it stays callable (and, with the module gone, only passes
                // the call on).
                wrapper.forget();
            }
        }
    }
}

/// A listener on the loader's `<script>` element (its `load` or `error`); dropping it removes it.
#[must_use = "dropping the handle removes the listener"]
pub(crate) struct ScriptListener {
    script: HtmlScriptElement,
    name: &'static str,
    closure: Closure<dyn FnMut(JsValue)>,
}

impl ScriptListener {
    pub(crate) fn new(
        script: &HtmlScriptElement,
        name: &'static str,
        handler: impl FnMut(JsValue) + 'static,
    ) -> Self {
        let closure = Closure::<dyn FnMut(JsValue)>::new(handler);
        let _ = script.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        Self {
            script: script.clone(),
            name,
            closure,
        }
    }
}

impl Drop for ScriptListener {
    fn drop(&mut self) {
        let _ = self
            .script
            .remove_event_listener_with_callback(self.name, self.closure.as_ref().unchecked_ref());
    }
}
