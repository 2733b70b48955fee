//! The guard in front of `--static-dir`: only the site's own files are served.
//!
//! `ServeDir` already refuses `..` and answers 404 for what is missing; it would still serve a dotfile (`/.env`,
//! `/.git/HEAD`) and follow a symbolic link out of the directory (to `/etc/...`). Both answer 404 here, as a
//! missing file does, so nothing tells an attacker they exist.
//!
//! Every file goes with `X-Content-Type-Options: nosniff`, `Referrer-Policy: strict-origin-when-cross-origin` and
//! the configured `Content-Security-Policy` (by default `frame-ancestors 'self'`: the site's login page cannot be
//! framed by another site to trick a visitor into clicking in it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

/// The served directory, resolved once.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    root: Arc<Path>,
    csp: Option<HeaderValue>,
    /// `root` with its links resolved (`None` if it cannot be: then every path is refused).
    real_root: Option<Arc<Path>>,
}

impl Site {
    pub(crate) fn new(root: &Path, csp: Option<HeaderValue>) -> Self {
        Self {
            root: root.into(),
            csp,
            real_root: root.canonicalize().ok().map(Into::into),
        }
    }

    /// Whether the request path names one of the site's own files (or a file that does not exist, for
    /// `ServeDir` to answer 404).
    fn allows(&self, path: &str) -> bool {
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        // A dot at the start of any segment: dotfiles and dot-directories (and `.`/`..`, which ServeDir refuses too).
        if decoded.split(['/', '\\']).any(|segment| segment.starts_with('.')) {
            return false;
        }
        let Some(real_root) = &self.real_root else {
            return false;
        };
        let target: PathBuf = self.root.join(decoded.trim_start_matches('/'));
        match target.canonicalize() {
            // Where it really is, links resolved, must still be inside the directory.
            Ok(real) => real.starts_with(real_root),
            Err(_) => true,
        }
    }
}

/// The middleware: 404 for what is not the site's own, else the file server.
pub(crate) async fn only_the_site(State(site): State<Site>, request: Request, next: Next) -> Response {
    if !site.allows(request.uri().path()) {
        return ApiError::NotFound.into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    if let Some(csp) = &site.csp {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotfiles_and_links_out_of_the_site_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "not for the web").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("assets/app.js"), "").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), dir.path().join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("index.html"), dir.path().join("home.html")).unwrap();
        let site = Site::new(dir.path(), None);
        for allowed in ["/", "/index.html", "/assets/app.js", "/home.html", "/missing.js"] {
            assert!(site.allows(allowed), "{allowed}");
        }
        for refused in [
            "/.env",
            "/.git/HEAD",
            "/assets/.hidden",
            "/%2eenv",
            "/%2Egit/config",
            "/leak.txt",
        ] {
            assert!(!site.allows(refused), "{refused}");
        }
    }
}
