"""Settings: environment variables with the RAG_ prefix, OLLAMA_HOST, flags on top, clear errors."""

import pytest

from rag.config import get_settings
from rag.errors import ConfigError


def test_environment_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("RAG_EMBED_MODEL", "some/model")
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9999")
    s = get_settings(data_dir=tmp_path / "from-flag", index_dir=None)
    assert s.data_dir == tmp_path / "from-flag"  # a flag beats the environment
    assert s.embed_model == "some/model"
    assert s.ollama_host == "http://127.0.0.1:9999"
    assert str(s.index_dir) == "index"  # None means "not given"


def test_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("RAG_MODE", "magic")
    with pytest.raises(ConfigError, match="RAG_MODE"):
        get_settings()
    monkeypatch.delenv("RAG_MODE")
    with pytest.raises(ConfigError, match="--top-k"):
        get_settings(top_k="many")
