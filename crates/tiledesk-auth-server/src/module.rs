//! The browser module inside the binary (see `build.rs`), served at a content-addressed path,
//! `/tiledesk-auth/<version>-<hash>/<file>`, so that its answers can be cached for a year and pinned by a
//! Subresource Integrity hash (`tiledesk-auth snippet` prints the tag).
//!
//! Every file is public: `Access-Control-Allow-Origin: *` and no credentials (a module script from another
//! origin needs CORS), `Cache-Control: public, max-age=31536000, immutable`, an `ETag`, and the gzip or brotli
//! variant compressed at build time when `Accept-Encoding` takes it (`Vary: Accept-Encoding`).

use std::sync::{Arc, LazyLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256, Sha384};

use crate::http::error::ApiError;
use crate::state::Shared;

/// Where the module's files are served; the next path segment is [`BrowserModule::dir`].
pub const PREFIX: &str = "/tiledesk-auth/";

/// The file a page's one `<script type="module">` tag loads: the module's JS glue and the code that signs the
/// visitor in from the tag's `data-` attributes, in one file, so that the tag's `integrity` covers both; it loads
/// the `.wasm` with an integrity hash of its own.
pub const ENTRY: &str = "tiledesk-auth.js";

/// A file as `build.rs` embeds it.
pub(crate) struct Embedded {
    pub(crate) name: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) identity: &'static [u8],
    pub(crate) gzip: &'static [u8],
    pub(crate) brotli: &'static [u8],
}

static EMBEDDED: &[Embedded] = include!(concat!(env!("OUT_DIR"), "/module_files.rs"));

static MODULE: LazyLock<Option<Arc<BrowserModule>>> = LazyLock::new(|| {
    (!EMBEDDED.is_empty()).then(|| {
        Arc::new(BrowserModule::new(EMBEDDED.iter().map(|file| {
            ModuleFile::new(
                file.name,
                file.content_type,
                [
                    Bytes::from_static(file.identity),
                    Bytes::from_static(file.gzip),
                    Bytes::from_static(file.brotli),
                ],
            )
        })))
    })
});

/// What the answer says when the binary carries no module.
pub const NOT_BUILT: &str = "this tiledesk-auth binary was built without the browser module: build it with \
                             `cargo xtask dist` (target/dist/tiledesk-auth), or serve the files of `cargo xtask pkg` yourself";

/// The browser module's files and the directory they are served under.
#[derive(Debug)]
pub struct BrowserModule {
    dir: String,
    files: Vec<ModuleFile>,
}

/// One of the module's files, with its precompressed variants.
#[derive(Debug)]
pub struct ModuleFile {
    name: &'static str,
    content_type: HeaderValue,
    /// As it is, gzip, brotli.
    variants: [Bytes; 3],
    /// The first 16 bytes of the file's SHA-256, in hex: the ETags' base.
    digest: String,
    /// The ETag of each variant, in the order of `variants`.
    etags: [HeaderValue; 3],
    /// `sha384-<base64>` of the file as it is, for a Subresource Integrity attribute.
    integrity: String,
}

impl ModuleFile {
    /// `name` of type `content_type`, as it is, gzipped and brotli-compressed (in that order).
    pub fn new(name: &'static str, content_type: &'static str, variants: [Bytes; 3]) -> Self {
        let digest = hex(&Sha256::digest(&variants[0])[..16]);
        let etags = [Encoding::Identity, Encoding::Gzip, Encoding::Brotli].map(|encoding| {
            HeaderValue::from_str(&format!("\"{digest}{}\"", encoding.etag_suffix()))
                .expect("hex digits and a suffix are a valid header value")
        });
        let integrity = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha384::digest(&variants[0]))
        );
        Self {
            name,
            content_type: HeaderValue::from_static(content_type),
            variants,
            digest,
            etags,
            integrity,
        }
    }

    /// `sha384-...` of the file's bytes.
    pub fn integrity(&self) -> &str {
        &self.integrity
    }
}

/// `bytes` in lower-case hex (also the audit trail's hashed addresses, on the request path: no formatting machinery).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

/// How an answer is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity = 0,
    Gzip = 1,
    Brotli = 2,
}

impl Encoding {
    /// The best encoding `Accept-Encoding` takes: brotli, then gzip, else the file as it is. `q=0` refuses one;
    /// `*` stands for any not named.
    fn chosen(headers: &HeaderMap) -> Self {
        let mut brotli = None;
        let mut gzip = None;
        let mut any = None;
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
                let accepted = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .all(|q| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0));
                match coding.as_str() {
                    "br" => brotli = Some(accepted),
                    "gzip" | "x-gzip" => gzip = Some(accepted),
                    "*" => any = Some(accepted),
                    _ => {}
                }
            }
        }
        if brotli.or(any) == Some(true) {
            Self::Brotli
        } else if gzip.or(any) == Some(true) {
            Self::Gzip
        } else {
            Self::Identity
        }
    }

    fn etag_suffix(self) -> &'static str {
        match self {
            Self::Identity => "",
            Self::Gzip => "-gzip",
            Self::Brotli => "-br",
        }
    }

    fn header(self) -> Option<HeaderValue> {
        match self {
            Self::Identity => None,
            Self::Gzip => Some(HeaderValue::from_static("gzip")),
            Self::Brotli => Some(HeaderValue::from_static("br")),
        }
    }
}

impl BrowserModule {
    /// The module this binary carries, if it was built with one (`cargo xtask dist`).
    pub fn embedded() -> Option<Arc<Self>> {
        MODULE.clone()
    }

    /// A module of these files. The directory is the workspace version and a hash of every file's name and bytes:
    /// a new build is a new path, so a year of caching never serves a stale file.
    pub fn new(files: impl IntoIterator<Item = ModuleFile>) -> Self {
        let files: Vec<ModuleFile> = files.into_iter().collect();
        let mut hash = Sha256::new();
        for file in &files {
            hash.update(file.name.as_bytes());
            hash.update([0]);
            hash.update(&file.digest);
        }
        let hash = hex(&hash.finalize()[..6]);
        Self {
            dir: format!("{}-{hash}", env!("CARGO_PKG_VERSION")),
            files,
        }
    }

    /// The directory under [`PREFIX`] the files are served from.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The path a file is served at: `/tiledesk-auth/<dir>/<name>`.
    pub fn path_of(&self, name: &str) -> String {
        format!("{PREFIX}{}/{name}", self.dir)
    }

    /// The file called `name`.
    pub fn file(&self, name: &str) -> Option<&ModuleFile> {
        self.files.iter().find(|file| file.name == name)
    }

    /// The one-tag entry file, when the module has one.
    pub fn entry(&self) -> Option<&ModuleFile> {
        self.file(ENTRY)
    }
}

/// Marks an answer as one of the module's public files: it gets `Access-Control-Allow-Origin: *`, in place of
/// whatever the CORS layer answered (see [`crate::app`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PublicFile;

/// `GET /tiledesk-auth/<dir>/<file>`.
pub(crate) async fn serve_file(
    State(state): State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let module = state.module.as_deref().ok_or(ApiError::ModuleNotBuilt)?;
    let (dir, name) = path.split_once('/').unwrap_or((&path, ""));
    if dir != module.dir {
        return Err(ApiError::ModuleNotHere(module.path_of(ENTRY)));
    }
    let file = module.file(name).ok_or(ApiError::NotFound)?;
    let encoding = Encoding::chosen(&headers);
    let etag = &file.etags[encoding as usize];
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == etag.as_bytes()
        });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Body::from(file.variants[encoding as usize].clone()).into_response();
        let answer = response.headers_mut();
        answer.insert(header::CONTENT_TYPE, file.content_type.clone());
        if let Some(coding) = encoding.header() {
            answer.insert(header::CONTENT_ENCODING, coding);
        }
        response
    };
    let answer = response.headers_mut();
    answer.insert(header::ETAG, etag.clone());
    answer.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    answer.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // A site that isolates itself (Cross-Origin-Embedder-Policy) may still load it.
    answer.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    response.extensions_mut().insert(PublicFile);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_encoding_follows_accept_encoding() {
        assert_eq!(Encoding::chosen(&HeaderMap::new()), Encoding::Identity);
        assert_eq!(
            Encoding::chosen(&accepting("gzip, deflate, br, zstd")),
            Encoding::Brotli
        );
        assert_eq!(Encoding::chosen(&accepting("gzip, deflate")), Encoding::Gzip);
        assert_eq!(Encoding::chosen(&accepting("br;q=0, gzip;q=0.5")), Encoding::Gzip);
        assert_eq!(
            Encoding::chosen(&accepting("br;q=0,gzip;q=0")),
            Encoding::Identity
        );
        assert_eq!(Encoding::chosen(&accepting("*")), Encoding::Brotli);
        assert_eq!(Encoding::chosen(&accepting("br;q=0, *")), Encoding::Gzip);
        assert_eq!(Encoding::chosen(&accepting("identity")), Encoding::Identity);
        assert_eq!(Encoding::chosen(&accepting("BR")), Encoding::Brotli);
        assert_eq!(Encoding::chosen(&accepting("br;q=nonsense")), Encoding::Identity);
    }

    #[test]
    fn the_directory_changes_with_any_file() {
        let module = |wasm: &'static [u8]| {
            BrowserModule::new([ModuleFile::new(
                "a.wasm",
                "application/wasm",
                [Bytes::from_static(wasm), Bytes::new(), Bytes::new()],
            )])
        };
        let (one, two) = (module(b"one"), module(b"two"));
        assert_ne!(one.dir(), two.dir());
        assert_eq!(one.dir(), module(b"one").dir());
        assert!(one.dir().starts_with(concat!(env!("CARGO_PKG_VERSION"), "-")));
        assert_eq!(
            one.path_of("a.wasm"),
            format!("/tiledesk-auth/{}/a.wasm", one.dir())
        );
        // `echo -n one | openssl dgst -sha384 -binary | base64`
        assert_eq!(
            one.file("a.wasm").unwrap().integrity(),
            "sha384-Xby+2wDRMaKeBZP5dvK0N5QpOSORmtQnZt6Bf+yCSmJieZ/sjQTLmxfEjo6ukSZY"
        );
    }
}
