"""An old index version goes once no request holds it, also when the pipeline built on it is a web of
reference cycles (rag.index.local.live.Retired): the follower collects after a swap until the old
store is gone -- with the real index, embedding model and pipeline, in process."""

from __future__ import annotations

import gc
import shutil
import weakref

from tests.api_fixtures import until
from tests.conftest import ARTICLES


def test_an_old_version_held_by_a_request_goes_after_it_ends(tmp_path, embedder):
    from rag.answer.pipeline import Pipeline
    from rag.config import Settings
    from rag.runtime import build, live_runtime, open_runtime

    shutil.copytree(ARTICLES, tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", index_dir=tmp_path / "index", reload_interval=0.1)
    live = live_runtime(settings, open_runtime(settings, embedder=embedder, build_if_missing=True),
                        lambda rt: Pipeline(rt.retriever, None, settings))
    live.start()
    gc.disable()  # no automatic collection: only the follower's may free the old version
    try:
        held = live.current()  # a request on the first version, still running during the swap
        held.pipeline.ask("Wie is Jihyun Park?", generator="extractive")
        first = weakref.ref(held.runtime.store)
        (tmp_path / "data" / "nieuw.md").write_text("# Nieuw\n\nDe vloot van Sinpo telt driehonderd boten.\n")
        build(settings, embedder)
        until(lambda: live.current().version != held.version, "the new version served", 10)
        assert first() is not None and len(live.retired) == 1  # the request still holds it
        del held  # the request ends: its snapshot is now garbage in cycles, freed by the follower
        until(lambda: first() is None, "the old version collected", 10)
        assert len(live.retired) == 0
    finally:
        gc.enable()
        live.stop()
