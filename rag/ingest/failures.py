"""Parse failures remembered by content hash (issue 36 point 4).

Reading a PDF, Word or HTML file runs in a limited child process (``rag.ingest.safe_parse``); a file
that breaks a limit -- above all one that runs into the parse timeout -- costs that much every time
it is read. So a build remembers each file it could not parse, by the SHA-256 of its bytes, with the
reason and the parse limits it was read under, in the index's manifest (``"failed"``; both stores).
The next build skips a remembered file at once with the same reason, until

* its bytes change (another hash: it is read again),
* the parse limits change (``RAG_PARSE_*``: it may fit the new ones), or
* ``rag index --retry-failed`` asks for every remembered file to be read again.

Only files that are still there are kept: a removed file is forgotten with the build that drops it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rag.ingest.limits import ParseLimits

__all__ = ["ParseFailures", "REMEMBERED"]

REMEMBERED = " (not read again until the file changes; `rag index --retry-failed` tries again)"


def limits_key(limits: ParseLimits | None) -> str:
    """A short fingerprint of the parse limits a failure happened under."""
    raw = json.dumps(asdict(limits or ParseLimits()), sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class ParseFailures:
    """The failures one build knows (``known``, from the previous index) and meets (``seen``)."""

    limits: str  # limits_key() of this build's parse limits
    known: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha256 -> {"path", "reason", "limits"}
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)  # remembered or new in this build

    @classmethod
    def from_manifest(cls, manifest: dict | None, limits: ParseLimits | None, *, retry: bool = False) -> "ParseFailures":
        """The failures an index remembers (none with ``retry``: every file is read again)."""
        known = (manifest or {}).get("failed") if not retry else None
        known = {k: dict(v) for k, v in known.items() if isinstance(v, dict) and v.get("reason")} \
            if isinstance(known, dict) else {}
        return cls(limits=limits_key(limits), known=known)

    def recall(self, sha256: str, path: str) -> str | None:
        """The reason a file with these bytes failed before under the same limits, or None (read it)."""
        entry = self.known.get(sha256)
        if entry is None or entry.get("limits") != self.limits:
            return None
        self.seen[sha256] = {**entry, "path": path}
        return entry["reason"]

    def record(self, sha256: str, path: str, reason: str) -> str:
        """A new failure; returns the reason as it is reported (saying it will not be read again)."""
        reason = reason if reason.endswith(REMEMBERED) else reason + REMEMBERED
        self.seen[sha256] = {"path": path, "reason": reason, "limits": self.limits}
        return reason

    def to_manifest(self) -> dict[str, dict[str, Any]]:
        """What the new index remembers: the failures of files that are still there."""
        return {k: self.seen[k] for k in sorted(self.seen)}
