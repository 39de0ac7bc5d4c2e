# Copyright: k8sedge developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the operator's certificates say of themselves: when each expires (every run reports the
ones that expire within a threshold, so a rotation is never a surprise), and their SHA-256
fingerprints (the probes check that an edge serves the one it was given)."""

from __future__ import annotations

import datetime
from typing import Any

from ansible_collections.k8sedge.lb.plugins.module_utils._errors import EdgeError
from ansible_collections.k8sedge.lb.plugins.module_utils._view import check_certificates, plain_certificates

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    HAS_CRYPTOGRAPHY = True
except ImportError:  # reported by expiring() when certificates are given
    HAS_CRYPTOGRAPHY = False


class CertificateError(EdgeError):
    """A certificate that cannot be read, or a threshold that is not one."""


def _load(name: str, pair: dict[str, str], variable: str) -> Any:
    try:
        return x509.load_pem_x509_certificate(pair["cert"].encode())
    except ValueError as exc:
        raise CertificateError(f"{variable}: certificate \"{name}\": cert: expected an X.509 certificate in PEM ({exc})") from None


def fingerprints(certificates: Any, variable: str) -> dict[str, str]:
    """name -> the SHA-256 fingerprint (hex) of the certificate (name -> {cert, key}) an edge
    presents for it: the first one of its chain."""
    certificates = check_certificates(plain_certificates(certificates), variable)
    if certificates and not HAS_CRYPTOGRAPHY:
        raise CertificateError("reading certificates needs the cryptography package on the controller")
    return {name: _load(name, pair, variable).fingerprint(hashes.SHA256()).hex() for name, pair in sorted(certificates.items())}


def expiring(certificates: Any, within_days: int, now: datetime.datetime, variable: str) -> list[dict[str, Any]]:
    """The certificates (name -> {cert, key}) whose first certificate expires within `within_days`
    of `now`, or has expired, soonest first: {name, not_after, days_left, subject, message}."""
    certificates = check_certificates(plain_certificates(certificates), variable)
    if not isinstance(within_days, int) or isinstance(within_days, bool) or within_days < 0:
        raise CertificateError(f"within_days: expected a number of days, 0 or more, got {within_days!r}")
    if certificates and not HAS_CRYPTOGRAPHY:
        raise CertificateError("reading certificates needs the cryptography package on the controller")
    found = []
    for name, pair in sorted(certificates.items()):
        cert = _load(name, pair, variable)
        not_after = cert.not_valid_after_utc
        days = (not_after - now).total_seconds() / 86400
        if days <= within_days:
            when = f"expired {-days:.0f} days ago" if days < 0 else f"expires in {days:.0f} days"
            found.append({"name": name, "not_after": not_after.isoformat(), "days_left": round(days, 1),
                          "subject": cert.subject.rfc4514_string(),
                          "message": f"certificate {name} ({cert.subject.rfc4514_string()}) {when}, on {not_after:%Y-%m-%d}"})
    return sorted(found, key=lambda f: f["days_left"])
