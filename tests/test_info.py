"""``rag info`` shows the values in force (rag/cli/info.py): top_k, limits, timeouts and thresholds as the
environment and defaults resolve them, every setting under ``all``, and no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_rag_info_shows_the_values_in_force_and_hides_secrets(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_TOP_K": "7", "RAG_LLM_TIMEOUT": "33", "RAG_MAX_QUESTION_CHARS": "900",
           "RAG_ABSTAIN_THRESHOLD": "0.9", "RAG_API_KEY": "geheim-sleutel", "RAG_INDEX_DIR": str(tmp_path / "ix"),
           "RAG_DATABASE_URL": "postgresql://rag:wachtwoord@db.example/rag", "OLLAMA_HOST": "http://127.0.0.1:9"}
    r = subprocess.run([sys.executable, "-m", "rag.cli.main", "info", "--json"], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "geheim-sleutel" not in r.stdout and "wachtwoord" not in r.stdout
    f = json.loads(r.stdout)["in_force"]
    assert f["answers"]["top_k"] == 7 and f["answers"]["k_range"] == [1, 50]
    assert f["timeouts_s"]["llm"] == 33 and f["limits"]["max_question_chars"] == 900
    assert f["thresholds"]["abstain_dutch"] == 0.9 and f["thresholds"]["abstain_calibrated"] is False
    assert abs(f["thresholds"]["abstain_other"] - 0.88) < 1e-9  # the other language keeps its distance
    assert f["server"]["uploads_and_reindex"] is True and f["all"]["api_key"] == "set"
    assert f["all"]["database_url"] == "postgresql://rag:***@db.example/rag"
    assert f["all"]["top_k"] == 7 and f["all"]["llm_timeout"] == 33
    text = subprocess.run([sys.executable, "-m", "rag.cli.main", "info"], env={**env, "COLUMNS": "300"}, cwd=REPO,
                          capture_output=True, text=True, timeout=300).stdout
    for line in ("Answers: top_k 7", "Timeouts (s): llm 33.0", "Thresholds: abstain_dutch 0.9", "Limits: max_question_chars 900"):
        assert line in text, text
