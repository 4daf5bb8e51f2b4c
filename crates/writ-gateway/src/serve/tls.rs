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
    #[error("tls_cert `{path}`: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file is unreadable or holds no private key.
    #[error("tls_key `{path}`: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("tls_cert and tls_key do not make a usable pair: {0}")]
    Pair(String),
}

/// Loads a certificate chain and its private key (PKCS#8, PKCS#1 or SEC1 PEM).
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in the file".to_string()));
    }
    // The key's bytes are never part of an error message.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: match e {
            rustls_pki_types::pem::Error::Io(io) => io.to_string(),
            _ => "no PEM private key in the file".to_string(),
        },
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Pair(e.to_string()))?;
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
            Err(TlsError::Cert { .. })
        ));
        // A key file holding a certificate, and a certificate file holding a key.
        assert!(matches!(
            load(&certs.cert, &certs.cert),
            Err(TlsError::Key { .. })
        ));
        let err = load(&certs.key, &certs.key).unwrap_err();
        assert!(matches!(err, TlsError::Cert { .. }), "{err}");
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
