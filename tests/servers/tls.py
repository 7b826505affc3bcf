"""A throwaway test CA and a server certificate for 127.0.0.1/localhost.

The servers present a certificate the tests can verify, so TLS verification is
on in the tests exactly as it is for users. A second, unrelated CA gives the
"wrong CA" failure. Generated with the `cryptography` package when it is
installed, otherwise with the openssl command line.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str  # the test CA's certificate: what policies put in tls.ca_file
    cert_file: str  # server certificate for 127.0.0.1 and localhost, signed by the CA
    key_file: str  # its private key (mode 0600: Samba refuses group/world-readable keys)
    other_ca_file: str  # a CA that signed nothing the servers present: the "wrong CA"


def make_tls(directory: str | os.PathLike) -> TlsFiles:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        ca_file=str(out / "ca.pem"),
        cert_file=str(out / "server.pem"),
        key_file=str(out / "server-key.pem"),
        other_ca_file=str(out / "other-ca.pem"),
    )
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _with_openssl(out, files)
    else:
        _with_cryptography(files)
    os.chmod(files.key_file, 0o600)
    return files


def _with_cryptography(files: TlsFiles) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reconciler tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def ca(common_name: str):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common_name)).issuer_name(name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("reconciler test CA")
    _, other_cert = ca("reconciler unrelated CA")
    # RSA for the server: Samba's GnuTLS handles it everywhere, and it is what AD DCs present.
    from cryptography.hazmat.primitives.asymmetric import rsa

    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost")).issuer_name(ca_cert.subject)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    Path(files.ca_file).write_bytes(ca_cert.public_bytes(pem))
    Path(files.other_ca_file).write_bytes(other_cert.public_bytes(pem))
    Path(files.cert_file).write_bytes(server_cert.public_bytes(pem))
    Path(files.key_file).write_bytes(server_key.private_bytes(
        pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))


def _with_openssl(out: Path, files: TlsFiles) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    for stem, cn in (("ca", "reconciler test CA"), ("other-ca", "reconciler unrelated CA")):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/O=reconciler tests/CN={cn}",
            "-keyout", str(out / f"{stem}-key.pem"), "-out", str(out / f"{stem}.pem"),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = out / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                   "basicConstraints=critical,CA:FALSE\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=reconciler tests/CN=localhost",
        "-keyout", files.key_file, "-out", str(out / "server.csr"))
    run("x509", "-req", "-in", str(out / "server.csr"), "-CA", files.ca_file, "-CAkey", str(out / "ca-key.pem"),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", files.cert_file)
