//! The whole HTTP service: the routes, and what applies to every answer (CORS, `nosniff`, the trace span).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tower::Service;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::{module, routes};

/// The module's files are public: whatever the CORS layer answered a listed origin (that origin, with
/// credentials), they are `Access-Control-Allow-Origin: *`, without credentials.
fn public_file(mut response: Response) -> Response {
    if response.extensions().get::<module::PublicFile>().is_some() {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
    response
}

/// What [`app`] builds and [`crate::http::accept::serve`] serves: an HTTP service that answers every request (its errors are
/// answers too), cheap to clone.
pub trait HttpService:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpService for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The whole HTTP service: `POST /auth`, `POST /tokens` (with an API key configured), `GET /healthz`, and the
/// static files of `static_dir` for every other `GET`. Hyper clones it for every request.
///
/// What applies to every answer (CORS, `nosniff`, the trace span) wraps the router from outside, as axum's guide to
/// middleware shows for middleware that runs around routing: a layer added with `Router::layer` wraps each route
/// in one more boxed service, and every request clones every box. `Cache-Control: no-store` is set by the answers
/// that need it (every answer carrying a token, and every [`crate::ApiError`]) rather than by a layer per route.
pub fn app(state: AppState) -> impl HttpService {
    let cors = cors(&state);
    let router = routes(state);
    // A span and a log line per request, at debug level: only when that level is on, since the layer reads the
    // clock four times per answer and wraps its body whether or not anything is logged.
    let trace = tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG).then(|| {
        tower::ServiceBuilder::new()
            .map_response(|response: Response<_>| response.map(Body::new))
            .layer(TraceLayer::new_for_http())
    });
    let measured = crate::metrics::enabled().then_some(MeasuredLayer);
    tower::ServiceBuilder::new()
        .option_layer(measured)
        .option_layer(trace)
        .map_response(public_file)
        .option_layer(cors)
        .layer(nosniff())
        .service(router)
}

/// The same service as an [`axum::Router`] a site nests in its own app ([`crate::Service::router`]): the same
/// routes, the same layers applied with `Router::layer`, and no trace span of its own (the site's applies).
pub(crate) fn nestable(state: AppState) -> Router {
    let cors = cors(&state);
    routes(state)
        .layer(nosniff())
        .layer(tower::util::option_layer(cors))
        .layer(tower::util::MapResponseLayer::new(public_file))
}

/// The routes and their state, without what wraps every answer.
fn routes(state: AppState) -> Router {
    let mut router = Router::new()
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .route("/tiledesk-auth/{*file}", axum::routing::get(module::serve_file));
    if state.api_key.is_some() {
        router = router.merge(routes::tokens::router());
    }
    router = match &state.static_dir {
        // ServeDir refuses paths that leave the directory (`..`) and answers 404 for missing files; the guard
        // refuses dotfiles and links that lead out of the directory.
        Some(dir) => router.fallback_service(
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    routes::site::Site::new(dir, state.static_csp.clone()),
                    routes::site::only_the_site,
                ))
                .map_response(axum::response::IntoResponse::into_response)
                .service(ServeDir::new(dir).append_index_html_on_directories(true)),
        ),
        None => router.fallback(routes::not_found),
    };
    router
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(Arc::new(state))
}

/// CORS for the listed origins; none without any.
fn cors(state: &AppState) -> Option<CorsLayer> {
    (!state.allowed_origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(state.allowed_origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            // The session bridge needs the visitor's cookies from a page of another origin (a listed one only:
            // never `*` with credentials).
            .allow_credentials({
                let listed = Arc::clone(&state.allowed_origins);
                AllowCredentials::predicate(move |origin, _| listed.contains(origin))
            })
            .max_age(std::time::Duration::from_secs(600))
    })
}

/// `X-Content-Type-Options: nosniff` on every answer.
fn nosniff() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    )
}

/// Times every request and counts it by route and status class ([`crate::metrics`]), when metrics are served.
#[derive(Clone)]
struct Measured<S>(S);

#[derive(Clone, Copy)]
struct MeasuredLayer;

impl<S> tower::Layer<S> for MeasuredLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured(inner)
    }
}

impl<S> Service<Request> for Measured<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = crate::metrics::Route::of(request.uri().path());
        let started = std::time::Instant::now();
        let answer = self.0.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            crate::metrics::metrics().request(route, response.status().as_u16(), started.elapsed());
            Ok(response)
        })
    }
}
