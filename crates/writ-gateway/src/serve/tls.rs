//! Inbound TLS: the server certificate and key loaded from PEM files (served by
//! `workers.rs` over rustls, HTTP/1.1 and HTTP/2 by ALPN).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("tls_cert `{path}`: {problem}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong.
        problem: PemProblem,
    },
    /// The key file is unreadable or holds no private key.
    #[error("tls_key `{path}`: {problem}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        problem: PemProblem,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("tls_cert and tls_key do not make a usable pair: {0}")]
    Pair(rustls::Error),
}

/// What is wrong with a PEM file.
#[derive(Debug, thiserror::Error)]
pub enum PemProblem {
    /// The file could not be opened or read.
    #[error("{0}")]
    Unreadable(std::io::Error),
    /// The certificate file is not well-formed PEM. (A key file that is not gets
    /// [`PemProblem::NoItem`]: the parser's message may quote the key's bytes.)
    #[error("{0}")]
    NotPem(rustls_pki_types::pem::Error),
    /// No PEM item of this kind (`certificate`, `private key`) in the file.
    #[error("no PEM {0} in the file")]
    NoItem(&'static str),
}

impl PemProblem {
    /// `e` as the problem it is; a parse error is `NotPem` only when `quotable`.
    fn of(e: rustls_pki_types::pem::Error, item: &'static str, quotable: bool) -> Self {
        match e {
            rustls_pki_types::pem::Error::Io(io) => Self::Unreadable(io),
            rustls_pki_types::pem::Error::NoItemsFound => Self::NoItem(item),
            e if quotable => Self::NotPem(e),
            _ => Self::NoItem(item),
        }
    }
}

/// Loads a certificate chain and its private key (PKCS#8, PKCS#1 or SEC1 PEM). Fails
/// with [`TlsError::Cert`] or [`TlsError::Key`] naming the file that cannot be used, or
/// [`TlsError::Pair`] when rustls refuses the two together.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |e| TlsError::Cert {
        path: cert.display().to_string(),
        problem: PemProblem::of(e, "certificate", true),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.display().to_string(),
            problem: PemProblem::NoItem("certificate"),
        });
    }
    // The key's bytes are never part of an error message.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        problem: PemProblem::of(e, "private key", false),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Pair)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use writ_testkit::TestCertificates;

    #[test]
    fn loads_a_pair_and_refuses_bad_files_without_printing_keys() {
        let certs = TestCertificates::generate();
        assert!(load(&certs.cert, &certs.key).is_ok());
        let missing = Path::new("/nonexistent/cert.pem");
        assert!(matches!(
            load(missing, &certs.key),
            Err(TlsError::Cert {
                problem: PemProblem::Unreadable(_),
                ..
            })
        ));
        // A key file holding a certificate, and a certificate file holding a key.
        assert!(matches!(
            load(&certs.cert, &certs.cert),
            Err(TlsError::Key {
                problem: PemProblem::NoItem("private key"),
                ..
            })
        ));
        let err = load(&certs.key, &certs.key).unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Cert {
                    problem: PemProblem::NoItem("certificate"),
                    ..
                }
            ),
            "{err}"
        );
        // The CA's certificate with the server's key: not a pair.
        let err = load(&certs.ca, &certs.key).unwrap_err();
        assert!(matches!(err, TlsError::Pair(_)), "{err}");
        let key_pem = std::fs::read_to_string(&certs.key).unwrap();
        let body = key_pem.lines().nth(1).unwrap();
        for e in [
            load(&certs.cert, &certs.cert).unwrap_err(),
            load(&certs.ca, &certs.key).unwrap_err(),
        ] {
            assert!(!e.to_string().contains(body));
        }
    }
}
