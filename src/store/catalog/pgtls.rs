//! TLS to the PostgreSQL catalog, as libpq reads the connection URL: `sslmode`
//! (`disable`, `prefer` — the default —, `require`, `verify-ca`, `verify-full`) and
//! `sslrootcert=FILE` (PEM), and a client certificate for `cert` authentication:
//! `sslcert=FILE` and `sslkey=FILE` (PEM; the key PKCS#8, PKCS#1 or SEC1). As with libpq, `prefer` and `require` encrypt without
//! checking the server's certificate unless `sslrootcert` is given (then the chain is
//! checked, as `verify-ca`); `verify-ca` checks the chain, `verify-full` the chain
//! and the host name. Roots are `sslrootcert`, else the public web roots.
//! `sslcrl=FILE` (PEM, one or more lists) and `sslcrldir=DIR` (every PEM list in the
//! directory's files: OpenSSL's hashed directory, or any files) make a revoked
//! certificate fail the check, as libpq asks OpenSSL to: every certificate of the chain
//! below the root, and one whose issuer has no list fails too. `sslpassword` opens an
//! encrypted client key: PKCS#8 (`-----BEGIN ENCRYPTED PRIVATE KEY-----`), or an RSA or
//! EC key in OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED` with AES-CBC or
//! DES-EDE3-CBC, the key derived by EVP_BytesToKey with MD5, as libpq reads).
//! tokio-postgres itself knows only `disable`/`prefer`/`require`: the two parameters
//! are taken out of the URL here and the rest is its own.

use crate::store::StoreError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What the catalog URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    pub root_cert: Option<std::path::PathBuf>,
    /// Certificate revocation lists the server's chain is checked against: a file, a
    /// directory.
    pub crl: Option<std::path::PathBuf>,
    pub crl_dir: Option<std::path::PathBuf>,
    /// The client's certificate chain and key.
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The passphrase of an encrypted client key.
    pub key_password: Option<Password>,
}

/// A passphrase, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Splits `sslmode` and `sslrootcert` out of a `postgres://` URL's query; returns the
/// URL for tokio-postgres (with `sslmode` it understands) and the parameters.
pub fn split(url: &str) -> Result<(String, TlsParams), StoreError> {
    let mut params = TlsParams {
        mode: SslMode::Prefer,
        root_cert: None,
        crl: None,
        crl_dir: None,
        client: None,
        key_password: None,
    };
    let (mut cert, mut key) = (None, None);
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), params)) };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
        match k {
            "sslmode" => {
                params.mode = match v.as_str() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(StoreError::BadInput(format!(
                            "catalog URL: sslmode={other:?} (disable, prefer, require, verify-ca, verify-full)"
                        )));
                    }
                }
            }
            "sslrootcert" => params.root_cert = Some(v.into()),
            "sslcrl" => params.crl = Some(v.into()),
            "sslcrldir" => params.crl_dir = Some(v.into()),
            "sslpassword" => params.key_password = Some(Password(v)),
            "sslcert" => cert = Some(std::path::PathBuf::from(v)),
            "sslkey" => key = Some(std::path::PathBuf::from(v)),
            _ => kept.push(pair),
        }
    }
    params.client = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err(StoreError::BadInput("catalog URL: sslcert and sslkey go together".into())),
    };
    // What tokio-postgres does with the connection: TLS or not, falling back or not.
    kept.push(match params.mode {
        SslMode::Disable => "sslmode=disable",
        SslMode::Prefer => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((format!("{base}?{}", kept.join("&")), params))
}

#[cfg(feature = "tls")]
pub use with_tls::connector;

/// The connector handed to tokio-postgres when TLS is on.
#[cfg(feature = "tls")]
pub type Connector = tokio_postgres_rustls::MakeRustlsConnect;
/// Without the `tls` feature there is none.
#[cfg(not(feature = "tls"))]
pub type Connector = std::convert::Infallible;

#[cfg(feature = "tls")]
mod with_tls {
    use super::{SslMode, TlsParams};
    use crate::store::StoreError;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{
        CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject,
    };
    use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
    use std::sync::Arc;

    /// The rustls connector for `params`, or None for `sslmode=disable`.
    pub fn connector(params: &TlsParams) -> Result<Option<super::Connector>, StoreError> {
        if params.mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match &params.root_cert {
            Some(file) => {
                let bad = |e: String| StoreError::BadInput(format!("sslrootcert {}: {e}", file.display()));
                for cert in CertificateDer::pem_file_iter(file).map_err(|e| bad(e.to_string()))? {
                    roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(bad("no certificate in it".into()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let mut chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let mut crls = Vec::new();
        if let Some(file) = &params.crl {
            crls.extend(revocation_lists("sslcrl", file, std::slice::from_ref(file))?);
        }
        if let Some(dir) = &params.crl_dir {
            let bad = |e: std::io::Error| StoreError::BadInput(format!("sslcrldir {}: {e}", dir.display()));
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(bad)? {
                let path = entry.map_err(bad)?.path();
                if path.is_file() {
                    files.push(path);
                }
            }
            files.sort();
            crls.extend(revocation_lists("sslcrldir", dir, &files)?);
        }
        if !crls.is_empty() {
            chain = chain.with_crls(crls);
        }
        let chain = chain.build().map_err(|e| StoreError::BadInput(format!("catalog TLS roots: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match (params.mode, &params.root_cert) {
            (SslMode::VerifyFull, _) => chain,
            (SslMode::VerifyCa, _) | (_, Some(_)) => Arc::new(Relaxed { webpki: chain, chain: true }),
            _ => Arc::new(Relaxed { webpki: chain, chain: false }),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::BadInput(format!("catalog TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &params.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let bad = |f: &std::path::Path, e: String| StoreError::BadInput(format!("{}: {e}", f.display()));
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| bad(cert, e.to_string()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(cert, e.to_string()))?;
                if chain.is_empty() {
                    return Err(bad(cert, "no certificate in it".into()));
                }
                let key_der = client_key(key, params.key_password.as_ref())?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    StoreError::BadInput(format!("sslcert {} with sslkey {}: {e}", cert.display(), key.display()))
                })?
            }
        };
        Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
    }

    /// The revocation lists in the files of `sslcrl` or `sslcrldir` (`param`, naming
    /// `place`), PEM; none at all is an error, as a check against no list would refuse
    /// every certificate.
    fn revocation_lists(
        param: &str,
        place: &std::path::Path,
        files: &[std::path::PathBuf],
    ) -> Result<Vec<CertificateRevocationListDer<'static>>, StoreError> {
        let mut crls = Vec::new();
        for file in files {
            let bad = |e: String| StoreError::BadInput(format!("{param} {}: {e}", file.display()));
            for crl in CertificateRevocationListDer::pem_file_iter(file).map_err(|e| bad(e.to_string()))? {
                crls.push(crl.map_err(|e| bad(e.to_string()))?);
            }
        }
        if crls.is_empty() {
            return Err(StoreError::BadInput(format!(
                "{param} {}: no certificate revocation list in it",
                place.display()
            )));
        }
        Ok(crls)
    }

    /// The client's key from `sslkey`: PEM, PKCS#8, PKCS#1 or SEC1, or PKCS#8 encrypted
    /// with the passphrase `sslpassword`.
    fn client_key(
        key: &std::path::Path,
        password: Option<&super::Password>,
    ) -> Result<PrivateKeyDer<'static>, StoreError> {
        let bad = |e: String| StoreError::BadInput(format!("sslkey {}: {e}", key.display()));
        let text = std::fs::read(key).map_err(|e| bad(e.to_string()))?;
        const BEGIN: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
        const END: &[u8] = b"-----END ENCRYPTED PRIVATE KEY-----";
        let find = |what: &[u8]| text.windows(what.len()).position(|w| w == what);
        if let Some(start) = find(BEGIN) {
            let password =
                password.ok_or_else(|| bad("the key is encrypted: give its passphrase as sslpassword".into()))?;
            let end =
                find(END).filter(|&e| e > start).ok_or_else(|| bad("an encrypted key without its end line".into()))?;
            let (_, der) =
                pkcs8::der::pem::decode_vec(&text[start..end + END.len()]).map_err(|e| bad(e.to_string()))?;
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| bad(e.to_string()))?;
            let plain = info
                .decrypt(password.0.as_bytes())
                .map_err(|e| bad(format!("cannot decrypt it with sslpassword ({e})")))?;
            return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
        }
        if text.windows(b"Proc-Type: 4,ENCRYPTED".len()).any(|w| w == b"Proc-Type: 4,ENCRYPTED") {
            let password =
                password.ok_or_else(|| bad("the key is encrypted: give its passphrase as sslpassword".into()))?;
            return legacy_key(&String::from_utf8_lossy(&text), password.0.as_bytes()).map_err(bad);
        }
        PrivateKeyDer::from_pem_slice(&text).map_err(|e| bad(e.to_string()))
    }

    /// An RSA or EC key in OpenSSL's legacy PEM encryption: `Proc-Type: 4,ENCRYPTED`,
    /// `DEK-Info: CIPHER,IV`, the key from the passphrase by EVP_BytesToKey (MD5, one
    /// round, the IV's first 8 bytes as salt), CBC with PKCS#7 padding.
    pub(super) fn legacy_key(text: &str, password: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
        use base64::Engine as _;
        use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
        let mut lines = text.lines().map(str::trim).skip_while(|l| !l.starts_with("-----BEGIN "));
        let begin = lines.next().ok_or("no PEM key")?;
        let kind = begin
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix(" PRIVATE KEY-----"))
            .ok_or_else(|| format!("{begin:?} is not a private key"))?
            .to_string();
        let mut dek = None;
        let mut body = String::new();
        let mut headers = true;
        for line in lines {
            if line.starts_with("-----END ") {
                break;
            }
            if headers {
                if line.is_empty() {
                    headers = false;
                } else if let Some(v) = line.strip_prefix("DEK-Info:") {
                    dek = Some(v.trim().to_string());
                }
                continue;
            }
            body.push_str(line);
        }
        let dek = dek.ok_or("an encrypted key without its DEK-Info line")?;
        let (cipher, iv) = dek.split_once(',').ok_or("a DEK-Info line without its IV")?;
        let iv = (0..iv.len() / 2)
            .map(|i| iv.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .filter(|iv| iv.len() >= 8)
            .ok_or("a DEK-Info IV that is not hexadecimal")?;
        let data = base64::engine::general_purpose::STANDARD.decode(&body).map_err(|e| format!("its base64: {e}"))?;
        let key_len = match cipher {
            "AES-128-CBC" => 16,
            "AES-192-CBC" => 24,
            "AES-256-CBC" => 32,
            "DES-EDE3-CBC" => 24,
            other => return Err(format!("encrypted with {other}, which bt does not read (AES-CBC or DES-EDE3-CBC)")),
        };
        let key = bytes_to_key(password, &iv[..8], key_len);
        let wrong = || "cannot decrypt it with sslpassword (wrong passphrase?)".to_string();
        let sizes = |_| "a DEK-Info IV of the wrong length".to_string();
        let plain = match cipher {
            "AES-128-CBC" => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
                .map_err(sizes)?
                .decrypt_padded_vec_mut::<Pkcs7>(&data),
            "AES-192-CBC" => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
                .map_err(sizes)?
                .decrypt_padded_vec_mut::<Pkcs7>(&data),
            "AES-256-CBC" => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
                .map_err(sizes)?
                .decrypt_padded_vec_mut::<Pkcs7>(&data),
            _ => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                .map_err(sizes)?
                .decrypt_padded_vec_mut::<Pkcs7>(&data),
        }
        .map_err(|_| wrong())?;
        // The right passphrase gives one DER SEQUENCE; a wrong one that happens to end
        // in valid padding does not.
        pkcs8::der::Document::try_from(plain.as_slice()).map_err(|_| wrong())?;
        match kind.as_str() {
            "RSA" => Ok(PrivateKeyDer::Pkcs1(plain.into())),
            "EC" => Ok(PrivateKeyDer::Sec1(plain.into())),
            other => Err(format!("an encrypted {other} key, which TLS here cannot use (RSA or EC)")),
        }
    }

    /// OpenSSL's EVP_BytesToKey with MD5 and one round: D_i = MD5(D_{i-1} ‖ pass ‖ salt).
    pub(super) fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
        use md5::Digest as _;
        let mut key = Vec::with_capacity(len + 16);
        let mut last: Vec<u8> = Vec::new();
        while key.len() < len {
            let mut h = md5::Md5::new();
            h.update(&last);
            h.update(password);
            h.update(salt);
            last = h.finalize().to_vec();
            key.extend_from_slice(&last);
        }
        key.truncate(len);
        key
    }

    /// The certificate check `verify-ca` and `prefer`/`require` ask for: the WebPKI
    /// verifier with the name not compared (`verify-ca`), or the certificate not checked
    /// at all (`prefer`/`require` without a root, as libpq). The handshake's signatures
    /// are always checked.
    #[derive(Debug)]
    struct Relaxed {
        webpki: Arc<WebPkiServerVerifier>,
        chain: bool,
    }

    impl ServerCertVerifier for Relaxed {
        fn verify_server_cert(
            &self,
            end: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            if !self.chain {
                return Ok(ServerCertVerified::assertion());
            }
            match self.webpki.verify_server_cert(end, intermediates, name, ocsp, now) {
                Err(Error::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.webpki.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.webpki.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.webpki.supported_verify_schemes()
        }
    }
}

/// Without the `tls` feature only `sslmode=disable` and `prefer` (which then stays
/// unencrypted) connect.
#[cfg(not(feature = "tls"))]
pub fn connector(params: &TlsParams) -> Result<Option<Connector>, StoreError> {
    match params.mode {
        SslMode::Disable | SslMode::Prefer => Ok(None),
        _ => Err(StoreError::BadInput("this bt was built without TLS (cargo feature tls): sslmode needs it".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_of_the_url() {
        let (url, p) = split(
            "postgres://bt@db:5432/bt?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3&sslcrl=/c.crl",
        )
        .expect("valid");
        assert_eq!(url, "postgres://bt@db:5432/bt?connect_timeout=3&sslmode=require");
        assert_eq!(
            p,
            TlsParams {
                mode: SslMode::VerifyFull,
                root_cert: Some("/etc/ca.pem".into()),
                crl: Some("/c.crl".into()),
                crl_dir: None,
                client: None,
                key_password: None
            }
        );
        let (url, p) =
            split("postgres://bt@db/bt?sslcert=/c.pem&sslkey=/k.pem&sslpassword=p%26w&sslcrldir=/crls").expect("valid");
        assert_eq!(
            (url.as_str(), p.client),
            ("postgres://bt@db/bt?sslmode=prefer", Some(("/c.pem".into(), "/k.pem".into())))
        );
        assert_eq!((p.key_password, p.crl_dir), (Some(Password("p&w".into())), Some("/crls".into())));
        assert_eq!(format!("{:?}", Password("secret".into())), "Password(..)");
        assert!(split("postgres://bt@db/bt?sslcert=/c.pem").is_err(), "a certificate without its key");
        let (url, p) = split("postgres://bt@db/bt").expect("valid");
        assert_eq!((url.as_str(), p.mode), ("postgres://bt@db/bt", SslMode::Prefer));
        assert_eq!(
            split("postgres://bt@db/bt?sslmode=disable").expect("valid").0,
            "postgres://bt@db/bt?sslmode=disable"
        );
        assert!(split("postgres://bt@db/bt?sslmode=sometimes").is_err());
    }

    /// Against `openssl enc -aes-256-cbc -P -md md5 -S 0102030405060708 -pass
    /// 'pass:s3cret&more'` and the same with `-des-ede3-cbc`.
    #[cfg(feature = "tls")]
    #[test]
    fn legacy_keys_are_derived_as_openssl_does() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
        let salt = [1, 2, 3, 4, 5, 6, 7, 8];
        let k = with_tls::bytes_to_key(b"s3cret&more", &salt, 48);
        assert_eq!(hex(&k[..32]), "90EB9DFC918C86670CAA851570962970AB0C19C12C1B3ED5869A122FB4710D96");
        assert_eq!(hex(&k[32..]), "93CA15AB2303348ABEC3319D667C2725", "the IV openssl derives next");
        assert_eq!(hex(&with_tls::bytes_to_key(b"s3cret&more", &salt, 24)), hex(&k[..24]));
        let broken = [
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----",
                "DEK-Info",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,XYZ\n\nAAAA\n",
                "hexadecimal",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: RC2-CBC,0102030405060708\n\nAAAA\n",
                "RC2-CBC",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0102030405060708\n\nAAAAAAAAAAAAAAAAAAAAAA==\n",
                "IV",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0102030405060708090A0B0C0D0E0F10\n\nAAAAAAAAAAAAAAAAAAAAAA==\n",
                "passphrase",
            ),
            ("Proc-Type: 4,ENCRYPTED", "no PEM key"),
        ];
        for (text, says) in broken {
            let e = with_tls::legacy_key(text, b"pw").expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    /// Keys that OpenSSL encrypted in its legacy format decrypt to the DER that OpenSSL
    /// itself decrypts them to (RSA as PKCS#1, EC as SEC1), for every cipher read.
    #[cfg(feature = "tls")]
    #[test]
    fn legacy_keys_decrypt_as_openssl_decrypts_them() {
        use rustls::pki_types::PrivateKeyDer;
        let dir = std::env::temp_dir().join(format!("bt-legacy-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl").args(args).current_dir(&dir).output().expect("openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        openssl(&["genrsa", "-out", "rsa.pem", "2048"]);
        openssl(&["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "ec.pem"]);
        for (tool, plain) in [("rsa", "rsa.pem"), ("ec", "ec.pem")] {
            let der = format!("{tool}.der");
            // OpenSSL 3 writes PKCS#8 unless told otherwise; the legacy format is PKCS#1.
            let mut args = vec![tool, "-in", plain, "-outform", "DER", "-out", &der];
            if tool == "rsa" {
                args.push("-traditional");
            }
            openssl(&args);
            let want = std::fs::read(dir.join(&der)).expect("der");
            // Single DES is not offered: OpenSSL 3 writes it only with its legacy provider.
            for cipher in ["-aes128", "-aes192", "-aes256", "-des3"] {
                let enc = format!("{tool}{cipher}.pem");
                let mut args = vec![tool, "-in", plain, cipher, "-passout", "pass:s3cret&more", "-out", &enc];
                if tool == "rsa" {
                    args.push("-traditional");
                }
                openssl(&args);
                let text = std::fs::read_to_string(dir.join(&enc)).expect("key");
                assert!(text.contains("Proc-Type: 4,ENCRYPTED"), "{enc} is not in the legacy format");
                let got = with_tls::legacy_key(&text, b"s3cret&more").unwrap_or_else(|e| panic!("{enc}: {e}"));
                match (tool, got) {
                    ("rsa", PrivateKeyDer::Pkcs1(k)) => assert!(k.secret_pkcs1_der() == want, "{enc}"),
                    ("ec", PrivateKeyDer::Sec1(k)) => assert!(k.secret_sec1_der() == want, "{enc}"),
                    (_, other) => panic!("{enc}: {other:?}"),
                }
                let e = with_tls::legacy_key(&text, b"wrong").expect_err("a wrong passphrase");
                assert!(e.contains("cannot decrypt"), "{enc}: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
