//! The S3 backend against a real S3-compatible server (s3s-fs), over HTTP with SigV4: presigned
//! PUT and GET URLs work for exactly what they were signed for, head reports size and type,
//! delete removes, ping answers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use objects::s3::S3Objects;
use objects::ObjectStore;
use testing::s3::S3Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_put_and_get_exactly_what_was_signed() {
    let server = S3Server::start().await;
    let s3 = S3Objects::new(&server.settings);
    s3.ping().await.unwrap();
    let key = "uploads/0193-test";
    assert_eq!(s3.head(key).await.unwrap(), None);
    let body = b"hello, object storage".to_vec();
    let put = s3
        .presign_put(
            key,
            "text/plain",
            body.len() as i64,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(
        put.url
            .starts_with(&server.settings.endpoint.clone().unwrap()),
        "{}",
        put.url
    );
    assert_eq!(
        put.headers.get("Content-Type").map(String::as_str),
        Some("text/plain")
    );
    let client = reqwest::Client::new();
    let send = |bytes: Vec<u8>, content_type: &'static str| {
        let mut request = client.put(&put.url).body(bytes);
        for (name, value) in &put.headers {
            let value = if name == "Content-Type" {
                content_type
            } else {
                value.as_str()
            };
            request = request.header(name, value);
        }
        request.send()
    };
    // Another size or type than signed: refused by the store.
    let wrong_size = send(b"short".to_vec(), "text/plain").await.unwrap();
    assert!(
        wrong_size.status().is_client_error(),
        "{}",
        wrong_size.status()
    );
    let wrong_type = send(body.clone(), "image/png").await.unwrap();
    assert!(
        wrong_type.status().is_client_error(),
        "{}",
        wrong_type.status()
    );
    assert_eq!(s3.head(key).await.unwrap(), None);
    let ok = send(body.clone(), "text/plain").await.unwrap();
    assert!(
        ok.status().is_success(),
        "{}: {}",
        ok.status(),
        ok.text().await.unwrap()
    );

    let head = s3.head(key).await.unwrap().unwrap();
    assert_eq!(head.size, body.len() as i64);
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    let get = s3
        .presign_get(key, "greeting.txt", Duration::from_secs(60))
        .await
        .unwrap();
    let got = client.get(&get).send().await.unwrap();
    assert!(got.status().is_success());
    assert_eq!(got.bytes().await.unwrap().to_vec(), body);

    s3.delete(key).await.unwrap();
    assert_eq!(s3.head(key).await.unwrap(), None);
    s3.delete(key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_bucket_is_an_error() {
    let server = S3Server::start().await;
    let mut settings = server.settings.clone();
    settings.secret_access_key = "wrong".into();
    assert!(S3Objects::new(&settings).head("uploads/x").await.is_err());
    let mut settings = server.settings.clone();
    settings.bucket = "missing".into();
    assert!(S3Objects::new(&settings).ping().await.is_err());
}
