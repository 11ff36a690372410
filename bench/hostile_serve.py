"""Hostile uploads and requests against a real `rag serve` (python -m rag.cli.main serve from this checkout): every
hostile file of tests/hostile_files.py uploaded,
the server's VmHWM/VmRSS read from /proc before and after."""
import os, shutil, subprocess, sys, time, tempfile
from pathlib import Path
import httpx
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.api_fixtures import free_port
from tests.hostile_files import hostile_corpus
from tests.conftest import ARTICLES

tmp = Path(tempfile.mkdtemp(prefix="wt-hostile-serve-"))
data = tmp / "data"; shutil.copytree(ARTICLES, data)
port = free_port()
env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_API_KEY": "k", "OLLAMA_HOST": "http://127.0.0.1:9", "RAG_LLM_PROBE_TIMEOUT": "1",
       "TOKENIZERS_PARALLELISM": "false"}
log = open(tmp / "serve.log", "wb")
proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                         "--data", str(data), "--index", str(tmp / "index")], stdout=log, stderr=subprocess.STDOUT, env=env)
url = f"http://127.0.0.1:{port}"
def mem():
    st = open(f"/proc/{proc.pid}/status").read()
    get = lambda k: int(st.split(k + ":")[1].split()[0]) // 1024
    return get("VmRSS"), get("VmHWM")
try:
    for _ in range(900):
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200: break
        except httpx.HTTPError: pass
        time.sleep(1)
    corpus = hostile_corpus()
    httpx.get(url + "/api/search", params={"q": "raket"}, timeout=60)
    rss0, hwm0 = mem()
    print(f"baseline after start and one search: RSS {rss0} MB, peak {hwm0} MB")
    t_all = time.perf_counter(); worst = 0
    for name, (content, _) in corpus.items():
        t = time.perf_counter()
        r = httpx.post(url + "/api/documents", files={"file": (name, content)}, headers={"Authorization": "Bearer k"}, timeout=300)
        took = time.perf_counter() - t; worst = max(worst, took)
        print(f"  {name}: {r.status_code} {took:.2f} s")
    rss1, hwm1 = mem()
    print(f"after {len(corpus)} hostile uploads ({time.perf_counter() - t_all:.1f} s, slowest {worst:.2f} s): RSS {rss1} MB, peak {hwm1} MB (+{hwm1 - hwm0} MB over the baseline peak)")
    print("health:", httpx.get(url + "/health", timeout=10).json()["status"])
    # issue 25 point 1: the probe's follow-up with a 19,990-character history turn, and searches meanwhile
    import statistics, threading
    def search_ms():
        t = time.perf_counter(); httpx.get(url + "/api/search", params={"q": "kolenmijn antraciet Hamhung"}, timeout=120)
        return (time.perf_counter() - t) * 1000
    alone = [search_ms() for _ in range(5)]
    words = "Pyongyang raketlancering satelliet Sohae kolenmijn Hamhung antraciet ziekenhuis "
    body = {"question": "En hoe oud is zij?", "generator": "extractive",
            "history": [{"role": "user", "content": (words * 300)[:19_990]}]}
    out = {}
    def ask():
        t = time.perf_counter(); r = httpx.post(url + "/api/ask", json=body, timeout=300)
        out["s"] = time.perf_counter() - t; out["len"] = len(r.json().get("standalone_question") or "")
    th = threading.Thread(target=ask); th.start(); time.sleep(0.05)
    during = [search_ms() for _ in range(5)]
    th.join()
    print(f"follow-up ask with a 19,990-char history turn: {out['s']:.2f} s, standalone question {out['len']} chars; "
          f"search median alone {statistics.median(alone):.0f} ms, during it {statistics.median(during):.0f} ms")
    r = httpx.post(url + "/v1/chat/completions", timeout=60, json={"model": "rag-extractive", "messages": [
        {"role": "user", "content": "x " * 30_000}, {"role": "user", "content": "En hoe oud is zij?"}]})
    print("/v1 with a 60,000-char turn:", r.status_code, r.text[:120])
finally:
    proc.terminate(); proc.wait(30)
    shutil.rmtree(tmp, ignore_errors=True)
