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
its method (and the teachers reproduced), or certified equal to such a digest: certificates chain,
so an archive made over several refactors needs one certification per refactor, never a retrain.
``tsd archive`` keeps current records and retrains the rest; chapters count the records the current
code made, those it was certified equal to and the stale ones (:func:`currency`). Nothing here
trains: :func:`tsd_lib.runs.verify.certify` does the re-runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tsd_lib.provenance import results_digest

__all__ = ["archive_code", "certification", "currency", "is_current"]


def certification(manifest: Mapping[str, Any], digest: str | None = None) -> dict[str, Any] | None:
    """The certificate of ``digest`` (default: the current code) in an archive manifest, if any."""
    return (manifest.get("certified") or {}).get(digest or results_digest())


def is_current(record: Mapping[str, Any], manifest: Mapping[str, Any], digest: str | None = None) -> bool:
    """Whether ``record`` (an archived run or teacher record) stands for what ``digest`` (default:
    the current code) would compute: made by it, or by a digest certified equal for its method, or
    by one certified equal to such a digest for its method (certificates chain)."""
    return _current(record.get("code"), record.get("method"), manifest, digest or results_digest(), frozenset())


def _current(code: str | None, method: str | None, manifest: Mapping[str, Any], digest: str,
             seen: frozenset[str]) -> bool:
    if code == digest:
        return True
    cert = certification(manifest, digest)
    if not cert or digest in seen or not cert.get("teachers", False):
        return False
    if method is not None and not cert.get("methods", {}).get(method, False):  # a teacher record has no method
        return False
    return any(_current(code, method, manifest, older, seen | {digest}) for older in cert.get("equals", ()))


def archive_code(entries: list[Mapping[str, Any]], manifest: Mapping[str, Any]) -> str | None:
    """The code that the most records of an archive are current for (made by it, or certified; on a
    tie, the newest certified): the code a certification of the archive re-runs as its baseline."""
    certified = manifest.get("certified") or {}
    codes = {e["record"].get("code") for e in entries} | set(certified)

    def depth(code: str, seen: frozenset[str] = frozenset()) -> int:  # links of certificates behind a code
        older = [c for c in (certified.get(code) or {}).get("equals", ()) if c not in seen]
        return max((1 + depth(c, seen | {code}) for c in older), default=0)

    rank = {c: (sum(is_current(e["record"], manifest, c) for e in entries), depth(c)) for c in codes if c}
    return max(sorted(rank), key=rank.__getitem__, default=None)


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
