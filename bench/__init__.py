"""``rag bench`` (``./run.sh bench``): benchmarks that live beside the package, not in it.

Run from a checkout: the bench imports both ``rag`` and ``api``; ``rag`` imports it only in its ``bench`` command."""
