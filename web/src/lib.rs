//! The browser client, served by the platform at `/`.
//!
//! The client is plain HTML, CSS and JavaScript modules written in `web/assets/`; they are
//! embedded in the binary, so nothing is built at `cargo run` time and nothing is fetched from
//! the internet at run time. Every asset lives under `/assets/<version>/`, where the version is
//! a hash of all of them: those URLs never change content and are cached for a year, while the
//! page at `/` (which names the current version) is revalidated on every load. Each asset is
//! gzipped once at start-up rather than on every request.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

/// The files under `web/assets/`, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Where the page names its assets; replaced by `/assets/<version>` when the page is served.
const ASSETS_PLACEHOLDER: &str = "%ASSETS%";

/// How long browsers and proxies may keep a versioned asset: a year, never revalidated.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The embedded client, ready to serve: every file's bytes, gzipped copy and validator.
#[derive(Clone)]
pub struct WebClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The hash of every asset together; the path segment that makes asset URLs immutable.
    version: String,
    /// `index.html` with its asset prefix filled in.
    page: Asset,
    /// Every other file, by its path under `assets/`.
    files: HashMap<String, Asset>,
    /// The page's Content-Security-Policy.
    policy: HeaderValue,
}

/// One file as it goes over the wire.
struct Asset {
    plain: Bytes,
    /// None only if compressing failed, which writing into memory does not.
    gzip: Option<Bytes>,
    content_type: &'static str,
    /// Validators of the plain and the gzipped bytes: two representations, two strong tags.
    etag: HeaderValue,
    etag_gzip: HeaderValue,
}

impl Asset {
    fn new(path: &str, plain: Vec<u8>) -> Self {
        let digest = hex::encode(Sha256::digest(&plain));
        let tag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{}{suffix}\"", &digest[..20]))
                .unwrap_or(HeaderValue::from_static("\"0\""))
        };
        Self {
            gzip: gzip(&plain).map(Bytes::from),
            plain: Bytes::from(plain),
            content_type: content_type(path),
            etag: tag(""),
            etag_gzip: tag("-gz"),
        }
    }
}

impl WebClient {
    /// Loads the embedded assets. `extra_origins` are origins the page may also talk to and
    /// show images from (the object store that presigned upload and download URLs point at);
    /// everything else is limited to the page's own origin by its Content-Security-Policy.
    pub fn new(extra_origins: &[String]) -> Self {
        let mut names: Vec<String> = Assets::iter().map(|name| name.into_owned()).collect();
        names.sort();
        let mut hasher = Sha256::new();
        let mut raw = Vec::with_capacity(names.len());
        for name in names {
            if let Some(file) = Assets::get(&name) {
                hasher.update(name.as_bytes());
                hasher.update(file.metadata.sha256_hash());
                raw.push((name, file.data.into_owned()));
            }
        }
        let version = hex::encode(hasher.finalize())[..12].to_owned();
        let prefix = format!("/assets/{version}");
        let mut files = HashMap::new();
        let mut page = Vec::new();
        for (name, data) in raw {
            if name == "index.html" {
                page = String::from_utf8_lossy(&data)
                    .replace(ASSETS_PLACEHOLDER, &prefix)
                    .into_bytes();
            } else {
                let asset = Asset::new(&name, data);
                files.insert(name, asset);
            }
        }
        Self {
            inner: Arc::new(Inner {
                version,
                page: Asset::new("index.html", page),
                files,
                policy: content_security_policy(extra_origins),
            }),
        }
    }

    /// The assets' version: the path segment after `/assets/`.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// Bytes of the page and of every asset it loads on a first visit, as sent gzipped.
    pub fn first_load_gzip_bytes(&self) -> usize {
        std::iter::once(&self.inner.page)
            .chain(self.inner.files.values())
            .map(|asset| asset.gzip.as_ref().map_or(asset.plain.len(), Bytes::len))
            .sum()
    }
}

/// The page's policy: scripts, styles and connections from this origin only (WebSockets to it
/// included), no inline script or style, no framing, no plugins.
fn content_security_policy(extra_origins: &[String]) -> HeaderValue {
    let extra: String = extra_origins
        .iter()
        .filter(|origin| origin.bytes().all(|b| b.is_ascii_graphic()) && !origin.contains(';'))
        .map(|origin| format!(" {origin}"))
        .collect();
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:{extra}; \
         connect-src 'self'{extra}; media-src 'self' blob:{extra}; manifest-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
}

/// The client's routes: the page at `/` and the versioned assets.
pub fn router<S: Clone + Send + Sync + 'static>(client: WebClient) -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/assets/{version}/{*path}", get(asset))
        .with_state(client)
}

/// `GET /`: the page, revalidated on every load so that a new version is picked up at once.
async fn page(State(client): State<WebClient>, request: HeaderMap) -> Response {
    let inner = &client.inner;
    let mut response = send(&inner.page, &request, HeaderValue::from_static("no-cache"));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, inner.policy.clone());
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `GET /assets/{version}/{path}`: a file of the current version, cached for good. A page of an
/// older version (open during an upgrade) still gets the current file, but uncached.
async fn asset(
    State(client): State<WebClient>,
    Path((version, path)): Path<(String, String)>,
    request: HeaderMap,
) -> Response {
    let Some(file) = client.inner.files.get(&path) else {
        return not_found();
    };
    let cache = if version == client.inner.version {
        HeaderValue::from_static(IMMUTABLE)
    } else {
        HeaderValue::from_static("no-store")
    };
    send(file, &request, cache)
}

/// The file, gzipped when the client accepts it, or 304 when its copy is current.
fn send(file: &Asset, request: &HeaderMap, cache: HeaderValue) -> Response {
    let zipped = file.gzip.as_ref().filter(|_| accepts_gzip(request));
    let etag = if zipped.is_some() {
        &file.etag_gzip
    } else {
        &file.etag
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == etag.as_bytes());
    let (status, body, gzipped) = match zipped {
        _ if fresh => (StatusCode::NOT_MODIFIED, Body::empty(), zipped.is_some()),
        Some(gzip) => (StatusCode::OK, Body::from(gzip.clone()), true),
        None => (StatusCode::OK, Body::from(file.plain.clone()), false),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    headers.insert(header::CACHE_CONTROL, cache);
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// Whether `Accept-Encoding` accepts gzip: its own entry decides (`q=0`, `q=0.0`... refuse);
/// without one, a `*` entry does.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for coding in request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let weight = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(weight > 0.0);
        } else if name == "*" {
            any = Some(weight > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"detail":"Not found.","code":"not_found"}"#,
    )
        .into_response()
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).and_then(|()| encoder.finish()).ok()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" | "webmanifest" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}
