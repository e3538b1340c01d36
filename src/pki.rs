//! Development PKI and token keys, generated with rcgen: a CA, a server certificate,
//! per-party client certificates and an Ed25519 token key pair. Nothing here is ever
//! committed; production brings its own certificates and keys.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use crate::{AppError, AppResult};

pub struct DevPaths {
    pub dir: PathBuf,
}

impl DevPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DevPaths { dir: dir.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key.pem")
    }
    pub fn client_cert(&self, subject: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{}.pem", file_safe(subject)))
    }
    pub fn client_key(&self, subject: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{}.key.pem", file_safe(subject)))
    }
    pub fn token_signing_key(&self) -> PathBuf {
        self.dir.join("token-signing.key.pem")
    }
    pub fn token_verify_key(&self) -> PathBuf {
        self.dir.join("token-verify.pem")
    }
}

fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.@".contains(c) { c } else { '_' }).collect()
}

fn io(path: &Path, e: std::io::Error) -> AppError {
    AppError::Internal(format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, content: &str) -> AppResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    std::fs::write(path, content).map_err(|e| io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if path.to_string_lossy().ends_with(".key.pem") {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| io(path, e))?;
        }
    }
    Ok(())
}

fn rc(e: rcgen::Error) -> AppError {
    AppError::Internal(format!("certificate generation: {e}"))
}

/// Loads the dev CA, creating it when absent.
fn load_or_create_ca(paths: &DevPaths) -> AppResult<(rcgen::Certificate, KeyPair)> {
    if paths.ca_cert().exists() && paths.ca_key().exists() {
        let key_pem = std::fs::read_to_string(paths.ca_key()).map_err(|e| io(&paths.ca_key(), e))?;
        let cert_pem = std::fs::read_to_string(paths.ca_cert()).map_err(|e| io(&paths.ca_cert(), e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(rc)?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem).map_err(rc)?;
        // Re-signing the same params with the same key yields an equivalent issuer.
        let cert = params.self_signed(&key).map_err(rc)?;
        return Ok((cert, key));
    }
    let key = KeyPair::generate().map_err(rc)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    params.distinguished_name.push(DnType::CommonName, "ghthub development CA");
    params.distinguished_name.push(DnType::OrganizationName, "ghthub (dev only)");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key).map_err(rc)?;
    write_private(&paths.ca_cert(), &cert.pem())?;
    write_private(&paths.ca_key(), &key.serialize_pem())?;
    Ok((cert, key))
}

/// Ensures a CA, a server certificate (localhost, 127.0.0.1, ::1 and `extra_names`)
/// and a token key pair exist in `paths.dir`. Returns true when something was generated.
pub fn ensure_dev_material(paths: &DevPaths, extra_names: &[String]) -> AppResult<bool> {
    let mut generated = false;
    if !paths.server_cert().exists() || !paths.server_key().exists() || !paths.ca_cert().exists() {
        let (ca, ca_key) = load_or_create_ca(paths)?;
        let key = KeyPair::generate().map_err(rc)?;
        let mut names = vec!["localhost".to_string()];
        names.extend(extra_names.iter().cloned());
        let mut params = CertificateParams::new(names).map_err(rc)?;
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().map_err(|_| AppError::internal("ip"))?));
        params.subject_alt_names.push(SanType::IpAddress("::1".parse().map_err(|_| AppError::internal("ip"))?));
        params.distinguished_name.push(DnType::CommonName, "ghthub server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(rc)?;
        write_private(&paths.server_cert(), &cert.pem())?;
        write_private(&paths.server_key(), &key.serialize_pem())?;
        generated = true;
    }
    if !paths.token_signing_key().exists() || !paths.token_verify_key().exists() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(rc)?;
        write_private(&paths.token_signing_key(), &key.serialize_pem())?;
        write_private(&paths.token_verify_key(), &key.public_key_pem())?;
        generated = true;
    }
    Ok(generated)
}

/// Issues a client certificate whose common name is the party subject (for mTLS).
pub fn issue_client_cert(paths: &DevPaths, subject: &str) -> AppResult<(PathBuf, PathBuf)> {
    let (ca, ca_key) = load_or_create_ca(paths)?;
    let key = KeyPair::generate().map_err(rc)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    params.distinguished_name.push(DnType::CommonName, subject);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(rc)?;
    let (c, k) = (paths.client_cert(subject), paths.client_key(subject));
    write_private(&c, &cert.pem())?;
    write_private(&k, &key.serialize_pem())?;
    Ok((c, k))
}
