"""A throwaway CA and server certificate (openssl CLI) for TLS tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_certs(d: Path, san: str = "DNS:localhost,IP:127.0.0.1") -> None:
    """Writes ca.crt, server.crt, server.key into ``d``; the server certificate names ``san`` only."""

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=wdp-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    ossl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=wdp-test-server",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (d / "ext.cnf").write_text(f"subjectAltName={san}\n")
    ossl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    )
