//! [`RegistryError`]: what a registry request can fail with, typed so that retry decisions match on
//! variants (not on downcasts of opaque errors). Its texts are the ones users have always seen.

use reqwest::StatusCode;

/// A failed registry request.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 404: no such repository, tag, digest or upload.
    #[error("{what}: not found ({detail})")]
    NotFound { what: String, detail: String },
    /// 401 or 403 after authenticating.
    #[error("{what}: {status}: access denied ({detail})")]
    Unauthorized {
        what: String,
        status: StatusCode,
        detail: String,
    },
    /// Any other error status (`detail` is the registry's `errors[].code: message`).
    #[error("{what}: {status} {detail}")]
    Status {
        what: String,
        status: StatusCode,
        detail: String,
    },
    /// [`RegistryError::Unauthorized`] with what to do about it (log in, or which user was refused).
    #[error("{hint}")]
    Denied {
        hint: String,
        #[source]
        error: Box<RegistryError>,
    },
    /// Content that does not hash to the digest it was fetched by.
    #[error("blob from {from} failed verification: expected {expected}, got {actual}")]
    DigestMismatch {
        from: String,
        expected: String,
        actual: String,
    },
    /// The connection failed (after the request's own retries).
    #[error("{context}")]
    Transport {
        context: String,
        #[source]
        error: reqwest::Error,
    },
    /// A local file the request reads or writes.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The registry answered something the protocol does not allow.
    #[error("{0}")]
    Protocol(String),
    /// Anything else (credentials, token service), as it was reported.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl RegistryError {
    /// The HTTP status the registry answered with, if that is what failed.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            RegistryError::NotFound { .. } => Some(StatusCode::NOT_FOUND),
            RegistryError::Unauthorized { status, .. } | RegistryError::Status { status, .. } => {
                Some(*status)
            }
            RegistryError::Denied { error, .. } => error.status(),
            _ => None,
        }
    }

    /// Whether trying again may succeed: a broken or timed-out connection, or one reset, aborted
    /// or cut short while a body streamed.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { error, .. } => is_transient(error),
            RegistryError::Io(e) => is_transient_io(e),
            _ => false,
        }
    }
}

/// A transport failure worth retrying.
pub(crate) fn is_transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

fn is_transient_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_decisions_and_texts() {
        let denied = RegistryError::Denied {
            hint: "reg: access denied for user u".into(),
            error: Box::new(RegistryError::Unauthorized {
                what: "blob x".into(),
                status: StatusCode::FORBIDDEN,
                detail: "DENIED: no".into(),
            }),
        };
        assert_eq!(denied.status(), Some(StatusCode::FORBIDDEN));
        assert!(!denied.is_transient());
        assert_eq!(
            format!("{:#}", anyhow::Error::from(denied)),
            "reg: access denied for user u: blob x: 403 Forbidden: access denied (DENIED: no)"
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(RegistryError::Io(reset).is_transient());
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(!RegistryError::Io(missing).is_transient());
        let nf = RegistryError::NotFound {
            what: "manifest for a:b".into(),
            detail: "MANIFEST_UNKNOWN: gone".into(),
        };
        assert_eq!(nf.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(
            nf.to_string(),
            "manifest for a:b: not found (MANIFEST_UNKNOWN: gone)"
        );
    }
}
