//! [`TlsRedis`]: a private redis-server that also listens with TLS, with
//! certificates made at test time (`rcgen`): a CA, a server certificate for
//! `127.0.0.1` / `localhost` signed by it, and a client certificate.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::server::{free_port, RedisServer};

/// PEM files of a test CA and the certificates it signed.
pub struct TestCerts {
    /// The CA certificate (PEM): what a client trusts.
    pub ca: String,
    /// A client certificate signed by the CA, and its key (PEM).
    pub client_cert: String,
    /// The client certificate's private key (PEM).
    pub client_key: String,
    server_cert: String,
    server_key: String,
}

impl TestCerts {
    /// A fresh CA, a server certificate for 127.0.0.1 and localhost, and a
    /// client certificate.
    ///
    /// # Panics
    ///
    /// If rcgen fails (it does not for these parameters).
    pub fn generate() -> Self {
        let fail = |e: rcgen::Error| -> ! { panic!("rcgen: {e}") };
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail(e));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: a certificate whose subject is its issuer's name
        // looks self-signed to OpenSSL (Redis's side), which then refuses it.
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sessionkit test CA");
        let ca_key = KeyPair::generate().unwrap_or_else(|e| fail(e));
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap_or_else(|e| fail(e));
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap_or_else(|e| fail(e));
            let mut params = CertificateParams::new(names.clone()).unwrap_or_else(|e| fail(e));
            params
                .distinguished_name
                .push(DnType::CommonName, names[0].as_str());
            let cert = params.signed_by(&key, &ca).unwrap_or_else(|e| fail(e));
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]);
        let (client_cert, client_key) = leaf(vec!["sessionkit-test-client".to_owned()]);
        TestCerts {
            ca: ca.pem(),
            client_cert,
            client_key,
            server_cert,
            server_key,
        }
    }
}

/// The PEM files a TLS redis-server reads, in a directory of their own
/// (kept as long as a server may restart).
pub(crate) struct TlsFiles {
    pub(crate) dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    /// Writes the CA and the server's certificate and key of `certs`.
    pub(crate) fn write(certs: &TestCerts) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let write = |name: &str, pem: &str| -> PathBuf {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {name}: {e}"));
            path
        };
        TlsFiles {
            ca: write("ca.pem", &certs.ca),
            cert: write("server.pem", &certs.server_cert),
            key: write("server.key", &certs.server_key),
            dir,
        }
    }

    /// redis-server arguments serving TLS on `port` with these files; with
    /// `client_auth`, refusing clients without a certificate of the CA.
    pub(crate) fn args(&self, port: u16, client_auth: bool) -> Vec<String> {
        vec![
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            self.cert.display().to_string(),
            "--tls-key-file".into(),
            self.key.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca.display().to_string(),
            "--tls-auth-clients".into(),
            if client_auth { "yes" } else { "no" }.into(),
        ]
    }
}

/// A redis-server with a plain port (for the test's own inspection, as
/// [`RedisServer`]) and a TLS port (for the store under test).
pub struct TlsRedis {
    /// The server; its plain port stays open for the test's own commands.
    pub server: RedisServer,
    /// The certificates: trust [`TestCerts::ca`], present the client pair
    /// where the server asks for it.
    pub certs: TestCerts,
    tls_port: u16,
}

impl TlsRedis {
    /// Starts the server; with `client_auth`, it refuses TLS clients that
    /// present no certificate signed by the CA.
    ///
    /// # Panics
    ///
    /// If the certificate files cannot be written or the server does not
    /// start.
    pub fn start(client_auth: bool) -> Self {
        let certs = TestCerts::generate();
        let files = TlsFiles::write(&certs);
        let tls_port = free_port();
        let args = files.args(tls_port, client_auth);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = RedisServer::start_with(&args).keeping(files.dir);
        TlsRedis {
            server,
            certs,
            tls_port,
        }
    }

    /// `rediss://127.0.0.1:<tls port>/`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.tls_port)
    }

    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }
}
