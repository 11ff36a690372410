"""Thinking models (issue 23): the trace never reaches the answer; ``think`` is sent as configured."""

from __future__ import annotations

import pytest

from rag.errors import ConfigError
from rag.llms.ollama import OllamaLLM
from rag.llms.thinking import ThinkStripper, strip_thinking, think_value
from tests.fake_ollama import DEFAULT_MODEL

MESSAGES = [{"role": "user", "content": "Hoe oud is Jihyun Park?"}]


def stripped(pieces: list[str]) -> str:
    s = ThinkStripper()
    return "".join(s.feed(p) for p in pieces) + s.flush()


@pytest.mark.parametrize("pieces", [
    ["<think>plan</think>Antwoord [1]"],
    ["<think>", "plan", "</think>", "Antwoord", " [1]"],
    ["<thi", "nk>pl", "an</th", "ink>\n\nAntw", "oord [1]"],
    ["<", "t", "h", "i", "n", "k", ">", "plan", "<", "/", "think", ">", "Antwoord [1]"],
])
def test_think_blocks_are_stripped_across_piece_boundaries(pieces):
    assert stripped(pieces) == "Antwoord [1]"


def test_text_that_only_looks_like_a_tag_is_kept():
    assert stripped(["a <b> c <", "th", " d"]) == "a <b> c <th d"
    assert stripped(["x < y"]) == "x < y"


def test_unclosed_block_hides_the_rest():
    assert stripped(["Begin. <think>nog bezig"]) == "Begin. "


def test_strip_thinking_whole_text():
    assert strip_thinking("<think>plan\nstap 2</think>\nAntwoord [1].") == "Antwoord [1]."
    assert strip_thinking("het plan...</think>Antwoord [2].") == "Antwoord [2]."  # the prompt opened the block
    assert strip_thinking("Gewoon een antwoord.") == "Gewoon een antwoord."


def test_think_values():
    assert think_value("false") is False and think_value(None) is False and think_value("true") is True
    assert think_value("high") == "high"
    with pytest.raises(ValueError):
        think_value("maybe")
    with pytest.raises(ConfigError):
        OllamaLLM(model=DEFAULT_MODEL, think="maybe")


# ----------------------------------------------------------------------- the fake Ollama
def make(url: str, **kw) -> OllamaLLM:
    return OllamaLLM(host=url, model=DEFAULT_MODEL, timeout=10, probe_timeout=2, **kw)


@pytest.mark.parametrize("streaming", [True, False])
def test_think_tags_in_content_never_reach_the_answer(fake_ollama, streaming):
    fake_ollama.reply = ["<think>", "plan: zoek de leeftijd", "</think>", "Jihyun", " Park", " is 29 [1]."]
    with make(fake_ollama.url) as llm:
        text = "".join(llm.stream_chat(MESSAGES)) if streaming else llm.chat(MESSAGES)
    assert text == "Jihyun Park is 29 [1]."


@pytest.mark.parametrize("setting, sent", [("false", False), ("true", True), ("high", "high")])
def test_think_is_sent_as_configured_to_a_thinking_model(fake_ollama, setting, sent):
    fake_ollama.capabilities = ["completion", "thinking"]
    fake_ollama.thinking = "Eerst de bronnen lezen, dan antwoorden."
    fake_ollama.reply = "Jihyun Park is 29 [1]."
    with make(fake_ollama.url, think=setting) as llm:
        stream = llm.stream_chat(MESSAGES)
        text = "".join(stream)
        assert fake_ollama.last_chat["think"] == sent
        assert llm.chat(MESSAGES) == text
    assert text == "Jihyun Park is 29 [1]." and "bronnen" not in text
    if sent:  # the fake thinks only when asked: the trace arrived, counted, and was left out
        assert stream.progress.thinking == len(fake_ollama.thinking)


def test_no_think_flag_for_a_model_that_cannot_think(fake_ollama):
    with make(fake_ollama.url, think="true") as llm:
        assert llm.chat(MESSAGES)
    assert "think" not in fake_ollama.last_chat
