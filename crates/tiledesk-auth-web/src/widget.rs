//! The page's Tiledesk widget: settings, the command-queue stub, the loader script, its methods and events.
//!
//! Everything goes through `Reflect` on `window` at the moment of use, because `window.Tiledesk` is a queue
//! stub before boot and a different function after, and `window.tiledesk` gains its methods late
//! (`shared/docs/tiledesk-contract.md`, sections 3 and 4).

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{HtmlScriptElement, Window};

use crate::error::AuthError;

/// The id the loader uses to find its own base URL.
pub(crate) const SCRIPT_ID: &str = "tiledesk-jssdk";
/// The widget's root element, on which `window.tiledesk.on` registers listeners.
const ROOT_ID: &str = "tiledeskdiv";

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

/// Calls `window.tiledesk[name](arg)` if the widget has that method; `None` when it does not.
pub(crate) fn call(name: &str, arg: &JsValue) -> Option<Result<JsValue, JsValue>> {
    let (object, method) = method(name)?;
    Some(method.call1(&object, arg))
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

/// Writes the settings, installs the queue stub and the loader script if the page has none.
/// Returns the script element when this call inserted it.
pub(crate) fn prepare(
    project_id: &str,
    extra: Option<&Object>,
    widget_url: &str,
) -> Result<Option<HtmlScriptElement>, AuthError> {
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
        return Err(AuthError::BadOptions(format!(
            "the page's tiledeskSettings.projectid is `{existing}`, not `{project_id}`"
        )));
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
    if document.get_element_by_id(SCRIPT_ID).is_some() {
        return Ok(None);
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
    Ok(Some(script))
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

/// Runs `callback` at the widget's `onBeforeInit`, after the queue has been replayed.
///
/// A queued `onBeforeInit` would be registered during its own dispatch and never run, so the hook goes in
/// through a queued `onLoadParams` callback (run at `onLoadParams`), or straight to `window.tiledesk.on`
/// when the loader already created `window.tiledesk`.
pub(crate) fn on_boot(callback: Function) {
    if widget_object().is_some() {
        listen("onBeforeInit", &callback);
        return;
    }
    let hook = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        listen("onBeforeInit", &callback);
    })
    .into_js_value();
    enqueue("onLoadParams", &hook);
}

/// `window.tiledesk.on(name, callback)`; false when the widget object does not exist.
pub(crate) fn listen(name: &str, callback: &Function) -> bool {
    let Some((object, on)) = widget_object().and_then(|o| {
        let on = Reflect::get(&o, &"on".into()).ok()?.dyn_into::<Function>().ok()?;
        Some((o, on))
    }) else {
        return false;
    };
    on.call2(&object, &name.into(), callback).is_ok()
}

/// Removes a listener registered with [`listen`] from the widget's root element, if it is still there.
pub(crate) fn unlisten(name: &str, callback: &Function) {
    if let Some(root) = window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(ROOT_ID))
    {
        let _ = root.remove_event_listener_with_callback(name, callback);
    }
}
