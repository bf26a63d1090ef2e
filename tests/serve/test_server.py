"""``embgraft serve``: real HTTP on a free loopback port, good, bad and concurrent requests."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embgraft.export.onnx import export_onnx
from embgraft.export.predictor import Predictor
from embgraft.serve.app import ServeConfig, create_app
from export.conftest import real_titles

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def export_dir(thuc_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve") / "export"
    export_onnx(thuc_run("textcnn"), out)
    return out


@pytest.fixture
def server(export_dir):
    import uvicorn

    app = create_app(export_dir, ServeConfig(max_texts=50, max_text_chars=500, max_body_bytes=20_000,
                                             batch_size=64, max_wait_ms=50))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive()


def call(url: str, body: bytes | None = None, *, method: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_predict_health_labels(server, export_dir):
    url, _ = server
    texts = real_titles(20)[:20] + [""]
    status, out = call(url + "/predict", json.dumps({"texts": texts, "top_k": 2}).encode())
    assert status == 200 and len(out["predictions"]) == 21
    expected = Predictor.load(export_dir).predict(texts, top_k=2)
    assert [[(p["label"], p["probability"]) for p in row] for row in out["predictions"]] == \
        [[(lab, pytest.approx(p, abs=1e-6)) for lab, p in row] for row in expected]
    assert call(url + "/health") == (200, {"status": "ok", "model": str(export_dir), "backend": "onnx",
                                           "n_classes": 10})
    assert call(url + "/labels") == (200, {"labels": [str(i) for i in range(10)]})


@pytest.mark.parametrize("body, status, says", [
    (b"{not json", 400, "not JSON"),
    (b"[1, 2]", 422, "JSON object"),
    (json.dumps({"texts": "one"}).encode(), 422, "list of strings"),
    (json.dumps({"texts": [1, 2]}).encode(), 422, "list of strings"),
    (json.dumps({"texts": []}).encode(), 422, "empty"),
    (json.dumps({"texts": ["a"], "top_k": "2"}).encode(), 422, "top_k"),
    (json.dumps({"texts": ["a"], "top_k": 0}).encode(), 422, "top_k"),
    (json.dumps({"texts": ["a"], "extra": 1}).encode(), 422, "unknown field"),
    (json.dumps({"texts": ["a"] * 51}).encode(), 413, "51 texts"),
    (json.dumps({"texts": ["长" * 501]}).encode(), 413, "501 characters"),
    (json.dumps({"texts": ["a" * 450] * 49}).encode(), 413, "limit is 20,000"),
])
def test_bad_requests_are_json_errors(server, body, status, says):
    url, _ = server
    got, out = call(url + "/predict", body)
    assert got == status and says in out["error"] and set(out) == {"error"}


def test_unknown_route_and_method_are_json(server):
    url, _ = server
    assert call(url + "/nope")[0] == 404
    assert call(url + "/predict", method="GET")[0] == 405


def test_concurrent_requests_are_batched_and_answered_in_order(server, export_dir):
    url, app = server
    texts = real_titles(40)[:40]
    before = app.state.batcher.n_batches
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: call(url + "/predict", json.dumps({"texts": [t]}).encode()), texts))
    assert all(s == 200 for s, _ in results)
    expected = Predictor.load(export_dir).predict_proba(texts)
    got_labels = [out["predictions"][0][0]["label"] for _, out in results]
    assert got_labels == [str(int(np.argmax(p))) for p in expected]
    assert app.state.batcher.n_batches - before < len(texts)  # several requests shared a model call
