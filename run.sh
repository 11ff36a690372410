#!/usr/bin/env bash
# One entry point for a fresh machine.
#   ./run.sh            set up (venv, CPU PyTorch, the package), index data/articles, serve API + chat page
#   ./run.sh --port N   the same on another port (= ./run.sh serve --port N; or RAG_PORT=N ./run.sh)
#   ./run.sh test       set up, then run the test suite (what CI runs)
#   ./run.sh setup      only set up
#   ./run.sh bench ...  set up with the benchmark extras (LangChain, ONNX Runtime), then `rag bench ...`
#   ./run.sh docs       set up with the docs extras (MkDocs Material), build the site into site/ (--strict)
#   ./run.sh docs serve the same site on http://127.0.0.1:8001 while you edit docs/
# Any other arguments are passed to the `rag` command: ./run.sh ask "Wie is Jihyun Park?"
set -euo pipefail
cd "$(dirname "$0")"

VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

# pip with one line per package it collects, builds or installs (a long install shows that it moves);
# its whole output goes to $VENV/pip.log, whose end is shown when pip fails.
pip_install() {
  local log="$VENV/pip.log" line
  echo "   pip install $*" >> "$log"
  set +o pipefail
  "$VENV/bin/pip" install --progress-bar off "$@" 2>&1 | tee -a "$log" | while IFS= read -r line; do
    case "$line" in
      Collecting*|Processing*|Downloading*|"Building wheel"*|"Building editable"*|"Installing collected"*|Successfully*|ERROR*)
        [ ${#line} -gt 150 ] && [ "${line#ERROR}" = "$line" ] && line="${line:0:147}..."  # one line each (errors whole)
        printf '   %s\n' "$line" ;;
    esac
  done
  local status=${PIPESTATUS[0]}
  set -o pipefail
  if [ "$status" -ne 0 ]; then
    echo "!! pip failed (exit $status); the end of $log:" >&2
    tail -n 25 "$log" >&2
    return "$status"
  fi
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo ">> creating $VENV"
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    local t0=$SECONDS
    echo ">> installing PyTorch (CPU build) first, so nothing pulls the CUDA build (a few minutes the first time)"
    pip_install --upgrade pip
    pip_install "torch==2.13.0"
    echo ">> installing the project and its test tools"
    pip_install -e ".[test]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
    echo ">> installed in $((SECONDS - t0)) s (the whole pip output: $VENV/pip.log)"
  fi
}

# an extra of pyproject.toml ("bench", "docs"), installed once per pyproject.toml version
extra() {
  local stamp="$VENV/.$1-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo ">> installing the $1 extras"
    pip_install -e ".[test,$1]"
    rm -f "$VENV/.$1-"*
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
    extra bench
    exec "$VENV/bin/rag" bench "$@" ;;
  docs)
    shift
    setup
    extra docs
    export NO_MKDOCS_2_WARNING=1  # MkDocs' banner about its next major version
    if [ "${1:-build}" = serve ]; then
      shift
      exec "$VENV/bin/mkdocs" serve -a "${RAG_DOCS_ADDR:-127.0.0.1:8001}" "$@"
    fi
    [ "${1:-}" = build ] && shift
    exec "$VENV/bin/mkdocs" build --strict "$@" ;;
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
