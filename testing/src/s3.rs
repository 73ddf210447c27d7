//! An S3-compatible server for tests (s3s-fs: objects as files in a temporary directory), on a
//! loopback port, with SigV4 authentication and one bucket.

use chatboard_core::config::S3Settings;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// A running S3 server.
pub struct S3Server {
    /// Settings that reach it (bucket `uploads`, path style).
    pub settings: S3Settings,
    /// Where its objects live on disk.
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// Starts a server with an empty bucket.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("uploads")).expect("bucket dir");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let (access, secret) = ("test-access-key", "test-secret-key-0123456789");
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(access, secret));
            builder.build()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let conn = http.serve_connection(TokioIo::new(socket), service.clone());
                let conn = conn.into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Self {
            settings: S3Settings {
                bucket: "uploads".into(),
                endpoint: Some(format!("http://{addr}")),
                region: "us-east-1".into(),
                access_key_id: access.into(),
                secret_access_key: secret.into(),
                force_path_style: true,
            },
            dir,
            task,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
