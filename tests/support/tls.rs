//! Test certificates: a private CA and a server certificate for 127.0.0.1.

/// Writes a private CA's certificate, and a server certificate for 127.0.0.1 it
/// signed with its key (made with the `cryptography` package moto depends on).
/// Returns (CA certificate, server certificate, server key).
pub(crate) fn private_ca(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let script = r#"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
now = datetime.datetime.now(datetime.timezone.utc)
def cert(subject, key, issuer, issuer_key, ca):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())
ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyfill test CA")])
ca = cert(ca_name, ca_key, ca_name, ca_key, True)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
leaf = cert(name, key, ca_name, ca_key, False)
pem = serialization.Encoding.PEM
open(sys.argv[1], "wb").write(ca.public_bytes(pem))
open(sys.argv[2], "wb").write(leaf.public_bytes(pem))
open(sys.argv[3], "wb").write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption()))
"#;
    let paths = [
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    ];
    let ok = std::process::Command::new("python3")
        .args(["-c", script])
        .args(&paths)
        .status()
        .expect("python3");
    assert!(ok.success(), "could not make test certificates");
    paths
}
