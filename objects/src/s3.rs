//! S3 storage: any S3-compatible store, with URLs presigned by the AWS SDK (SigV4 in the query
//! string). A presigned PUT signs the content type and length, so the store itself refuses a
//! body of another size or type.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use chatboard_core::config::S3Settings;

use crate::{content_disposition, valid_key, ObjectError, ObjectInfo, ObjectStore, PresignedPut};

/// How long one storage call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A bucket in an S3-compatible store.
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

fn unavailable(e: impl std::fmt::Display) -> ObjectError {
    ObjectError::Unavailable(e.to_string())
}

/// The SDK's errors print as "service error"; the source chain says what happened.
fn describe(e: &(dyn std::error::Error + 'static)) -> ObjectError {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    ObjectError::Unavailable(text)
}

fn expiry(expires: Duration) -> Result<PresigningConfig, ObjectError> {
    PresigningConfig::expires_in(expires).map_err(unavailable)
}

impl S3Objects {
    /// A client for the bucket in `settings`.
    pub fn new(settings: &S3Settings) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(Credentials::new(
                settings.access_key_id.clone(),
                settings.secret_access_key.clone(),
                None,
                None,
                "chatboard-settings",
            ))
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(CALL_TIMEOUT)
                    .build(),
            )
            .force_path_style(settings.force_path_style);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
        }
    }

    fn check(key: &str) -> Result<(), ObjectError> {
        if valid_key(key) {
            Ok(())
        } else {
            Err(ObjectError::InvalidKey)
        }
    }
}

fn headers_of(request: &PresignedRequest) -> BTreeMap<String, String> {
    request
        .headers()
        // The client's HTTP library sets these itself from the body it sends.
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .map(|(name, value)| {
            let name = if name.eq_ignore_ascii_case("content-type") {
                "Content-Type".to_owned()
            } else {
                name.to_owned()
            };
            (name, value.to_owned())
        })
        .collect()
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: i64,
        expires: Duration,
    ) -> Result<PresignedPut, ObjectError> {
        Self::check(key)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(size)
            // Signed, so the client must send it: the store refuses a PUT over an existing
            // object, and a URL still valid after completion cannot swap the file.
            .if_none_match("*")
            .presigned(expiry(expires)?)
            .await
            .map_err(|e| describe(&e))?;
        Ok(PresignedPut {
            url: request.uri().to_owned(),
            headers: headers_of(&request),
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        filename: &str,
        expires: Duration,
    ) -> Result<String, ObjectError> {
        Self::check(key)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(content_disposition(filename))
            .presigned(expiry(expires)?)
            .await
            .map_err(|e| describe(&e))?;
        Ok(request.uri().to_owned())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        Self::check(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectInfo {
                size: head.content_length().unwrap_or(0),
                content_type: head.content_type().map(str::to_owned),
            })),
            Err(e) => {
                let not_found = e.as_service_error().is_some_and(|s| s.is_not_found())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
                if not_found {
                    Ok(None)
                } else {
                    Err(describe(&e))
                }
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        Self::check(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // AWS answers 204 for a key that is not there; some compatible stores answer 404.
            // Either way it is gone, as the janitor wants (most abandoned uploads never had a
            // file).
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }

    async fn ping(&self) -> Result<(), ObjectError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(())
    }
}
