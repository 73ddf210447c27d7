//! How the client is served: the page, versioned assets, caching, compression and the policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;
use web::WebClient;

async fn get(
    app: &Router,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, header::HeaderMap, Vec<u8>) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

fn app(origins: &[String]) -> (Router, WebClient) {
    let client = WebClient::new(origins);
    (web::router(client.clone()), client)
}

#[tokio::test]
async fn the_page_names_this_versions_assets_under_a_strict_policy() {
    let (app, client) = app(&[]);
    let (status, headers, body) = get(&app, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains(&format!("/assets/{}/app.js", client.version())),
        "{html}"
    );
    assert!(!html.contains("%ASSETS%"));
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(rule), "{policy} lacks {rule}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
}

#[tokio::test]
async fn the_object_store_is_allowed_for_uploads_and_images() {
    let (app, _) = app(&["https://files.example.com".to_owned()]);
    let (_, headers, _) = get(&app, "/", &[]).await;
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        policy.contains("connect-src 'self' https://files.example.com"),
        "{policy}"
    );
    assert!(
        policy.contains("img-src 'self' blob: data: https://files.example.com"),
        "{policy}"
    );
}

#[tokio::test]
async fn versioned_assets_are_immutable_and_gzipped_when_accepted() {
    let (app, client) = app(&[]);
    let path = format!("/assets/{}/app.js", client.version());
    let (status, headers, plain) = get(&app, &path, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    assert!(String::from_utf8(plain.clone()).unwrap().contains("import"));

    let (_, headers, zipped) = get(&app, &path, &[("accept-encoding", "br, gzip;q=0.8")]).await;
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert!(zipped.len() < plain.len());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&zipped[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain);

    for refusal in ["gzip;q=0", "gzip; q=0.0", "gzip;q=0, *", "identity"] {
        let (_, headers, _) = get(&app, &path, &[("accept-encoding", refusal)]).await;
        assert!(
            headers.get(header::CONTENT_ENCODING).is_none(),
            "{refusal:?} refuses gzip"
        );
    }
    let (_, headers, _) = get(&app, &path, &[("accept-encoding", "*")]).await;
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip", "* takes gzip");
}

#[tokio::test]
async fn a_current_copy_gets_304_and_unknown_files_404() {
    let (app, client) = app(&[]);
    let path = format!("/assets/{}/style.css", client.version());
    let (_, headers, _) = get(&app, &path, &[]).await;
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, _, body) = get(&app, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    // The gzipped bytes are another representation, with a tag of their own.
    let (_, headers, _) = get(&app, &path, &[("accept-encoding", "gzip")]).await;
    let zipped_tag = headers[header::ETAG].to_str().unwrap().to_owned();
    assert_ne!(zipped_tag, etag);
    let stale = [
        ("accept-encoding", "gzip"),
        ("if-none-match", etag.as_str()),
    ];
    let (status, _, _) = get(&app, &path, &stale).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the plain copy's tag does not match the gzipped one"
    );
    let current = [
        ("accept-encoding", "gzip"),
        ("if-none-match", zipped_tag.as_str()),
    ];
    let (status, _, _) = get(&app, &path, &current).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    let (status, _, body) = get(&app, &format!("/assets/{}/nope.js", client.version()), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8(body).unwrap().contains("not_found"));
}

#[tokio::test]
async fn an_older_pages_asset_request_gets_the_current_file_uncached() {
    let (app, _) = app(&[]);
    let (status, headers, _) = get(&app, "/assets/000000000000/app.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
}

/// The budget for a first visit: at most 150 KB over the wire.
#[test]
fn the_first_load_fits_in_150_kb_gzipped() {
    let bytes = WebClient::new(&[]).first_load_gzip_bytes();
    println!("first load: {bytes} bytes gzipped");
    assert!(bytes <= 150 * 1024, "{bytes} bytes");
}
