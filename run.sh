#!/usr/bin/env bash
# One entry point for a fresh machine.
#   ./run.sh            set up (venv, CPU PyTorch, the package), index data/articles, serve API + chat page
#   ./run.sh --port N   the same on another port (= ./run.sh serve --port N; or RAG_PORT=N ./run.sh)
#   ./run.sh test       set up, then run the test suite (what CI runs)
#   ./run.sh setup      only set up
#   ./run.sh bench ...  set up with the benchmark extras (LangChain, ONNX Runtime), then `rag bench ...`
# Any other arguments are passed to the `rag` command: ./run.sh ask "Wie is Jihyun Park?"
set -euo pipefail
cd "$(dirname "$0")"

VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo ">> creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo ">> installing PyTorch (CPU build) first, so nothing pulls the CUDA build"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "torch==2.13.0"
    echo ">> installing the project and its test tools"
    "$VENV/bin/pip" install --quiet -e ".[test]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

# options without a command are the server's: ./run.sh --port 8080 = ./run.sh serve --port 8080
if [ $# -gt 0 ] && [ "${1#-}" != "$1" ] && [ "$1" != "--help" ] && [ "$1" != "-h" ]; then
  set -- serve "$@"
fi

case "${1:-serve}" in
  setup)
    setup ;;
  test)
    shift
    setup
    export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    exec "$VENV/bin/python" -m pytest -ra "$@" ;;
  bench)
    shift
    setup
    if [ ! -f "$VENV/.bench-$(sha256sum pyproject.toml | cut -c1-16)" ]; then
      echo ">> installing the benchmark extras"
      "$VENV/bin/pip" install --quiet -e ".[test,bench]"
      rm -f "$VENV"/.bench-*
      touch "$VENV/.bench-$(sha256sum pyproject.toml | cut -c1-16)"
    fi
    exec "$VENV/bin/rag" bench "$@" ;;
  serve)
    [ $# -gt 0 ] && shift
    setup
    # brings the index of data/articles up to date (only new or changed files are embedded),
    # then serves the API and chat page on 127.0.0.1:8000
    exec "$VENV/bin/rag" serve "$@" ;;
  *)
    setup
    exec "$VENV/bin/rag" "$@" ;;
esac
