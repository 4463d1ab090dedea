"""Certified carry-over: which archived records the current code may use without retraining.

Every record carries the digest of the results code that made it
(:func:`tsd_lib.provenance.results_digest`). A change that does not alter results (a refactor)
still changes the digest; ``tsd verify --certify`` re-runs a stratified sample of the archive
under the current code and, per method, records in the archive's manifest whether every sampled
number reproduced exactly::

    "certified": {"<current digest>": {"equals": ["<digest that made the records>", ...],
                                       "methods": {"ce": true, "kd": false, ...},
                                       "teachers": true, "sample": [...], "date": "..."}}

A record is *current* when its code is the current digest, or a digest certified equal to it for
its method (and the teachers reproduced). ``tsd archive`` keeps current records and retrains the
rest; chapters count the records the current code made, those it was certified equal to and the
stale ones (:func:`currency`). Nothing here trains: :func:`tsd_lib.verify.certify` does the re-runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tsd_lib.provenance import results_digest

__all__ = ["certification", "currency", "is_current"]


def certification(manifest: Mapping[str, Any], digest: str | None = None) -> dict[str, Any] | None:
    """The certificate of ``digest`` (default: the current code) in an archive manifest, if any."""
    return (manifest.get("certified") or {}).get(digest or results_digest())


def is_current(record: Mapping[str, Any], manifest: Mapping[str, Any], digest: str | None = None) -> bool:
    """Whether ``record`` (an archived run or teacher record) stands for what ``digest`` (default:
    the current code) would compute: made by it, or by a digest certified equal for its method."""
    digest = digest or results_digest()
    code = record.get("code")
    if code == digest:
        return True
    cert = certification(manifest, digest)
    if not cert or code not in cert.get("equals", ()) or not cert.get("teachers", False):
        return False
    method = record.get("method")
    return method is None or bool(cert.get("methods", {}).get(method, False))  # a teacher record has no method


def currency(records: Iterable[Mapping[str, Any]], manifest: Mapping[str, Any], digest: str | None = None
             ) -> dict[str, Any]:
    """For a chapter: the current ``code`` (default: this code's digest), the ``earlier`` codes that made some
    of ``records`` ("none" without any) and, of ``records``, how many the current code made (``own``), how many
    earlier code certified equal to it made (``certified``) and how many it does not stand for (``stale``),
    with their methods (``stale_methods``, "none" without any)."""
    digest = digest or results_digest()
    records = list(records)
    stale = [r for r in records if not is_current(r, manifest, digest)]
    own = sum(r.get("code") == digest for r in records)
    return {"code": digest, "earlier": ", ".join(sorted({str(r.get("code")) for r in records} - {digest})) or "none",
            "own": own, "certified": len(records) - len(stale) - own, "stale": len(stale),
            "stale_methods": ", ".join(sorted({r.get("method") or "teachers" for r in stale})) or "none"}
