//! TLS for the HTTP listener: a certificate and key from PEM files,
//! optionally client certificates verified against a CA, all re-read on
//! reload without dropping a connection.
//!
//! Contract: [`Tls::load`] fails with the file and the reason when a file
//! is missing or holds no usable certificate or key; [`Tls::reload`] swaps
//! in new files for the next handshakes (connections already open keep
//! theirs) or keeps the old ones on error. A client certificate is
//! optional even with a CA configured: tokens keep working; a verified
//! certificate's subject can stand in for a token (see `auth`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsConfig;

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("TLS: {0}")]
    Config(#[from] rustls::Error),
    #[error("TLS client CA {path}: {source}")]
    ClientCa {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
}

/// The listener's TLS settings; cheap to share.
pub struct Tls {
    files: TlsConfig,
    config: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn load(files: &TlsConfig) -> Result<Tls, TlsError> {
        let config = build(files)?;
        Ok(Tls {
            files: files.clone(),
            config: RwLock::new(Arc::new(config)),
        })
    }

    /// Re-reads the files; the old ones stay on error.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files)?;
        *self.config.write() = Arc::new(config);
        tracing::info!(cert = %self.files.cert_file.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.read().clone())
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

fn build(files: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let chain = certs(&files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| file_error(&files.key_file, format!("no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| file_error(ca, format!("not a usable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|source| TlsError::ClientCa {
                    path: ca.clone(),
                    source,
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The subject of a DER certificate, RFC 4514 style without spaces
/// (`CN=alertmanager,O=ops`), as the tokens file names it.
pub fn subject(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(canonical_subject(&cert.subject().to_string()))
}

/// A subject with the spaces around its separators removed.
pub fn canonical_subject(s: &str) -> String {
    s.split(',')
        .map(|part| {
            let part = part.trim();
            match part.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                None => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}
