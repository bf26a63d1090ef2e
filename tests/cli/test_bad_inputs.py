"""The bad-input corpus (issue 8): every file here is generated, and ``embgraft graft`` runs on
each. A bad input gives exit code 2 and one line naming the file (and line where there is one),
never a traceback, and leaves nothing behind; an input that is valid after the fixes (BOM, blank
lines, CRLF) grafts with the right rows."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field

import numpy as np
import pytest

from embgraft.cli import main
from embgraft.grafting.result import GraftResult

CORPUS = "中国人\t1\n国人好\t0\n"
ROWS = {"中": [1.0, 2.0], "国": [3.0, 4.0], "人": [5.0, -6.0], "好": [0.5, 8.0]}


def w2v(rows=ROWS, *, header: str | None = "4 2", eol="\n") -> bytes:
    lines = ([header] if header is not None else []) + [
        f"{t} {' '.join(map(str, v))}" for t, v in rows.items()]
    return (eol.join(lines) + eol).encode("utf-8")


def w2v_bin(rows=ROWS) -> bytes:
    data = f"{len(rows)} 2\n".encode()
    for t, v in rows.items():
        data += t.encode() + b" " + struct.pack("<2f", *v) + b"\n"
    return data


def npy(matrix) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(matrix, dtype=np.float32))
    return buf.getvalue()


@dataclass
class Case:
    files: dict[str, bytes | None]  # name -> content; None makes a directory
    args: list[str]  # {name} is replaced by the file's path
    error: tuple[str, int | None, str] | None = None  # (file, line, what the message says after it)
    rows: dict[str, list[float]] = field(default_factory=dict)  # for inputs that graft


BOM = b"\xef\xbb\xbf"
SRC = ["--source", "{v.txt}", "--corpus", "{c.tsv}"]
CASES = {
    # valid once BOMs, blank lines and CRLF are understood
    "bom-word2vec": Case({"v.txt": BOM + w2v(), "c.tsv": CORPUS.encode()}, SRC, rows=ROWS),
    "bom-glove": Case({"v.txt": BOM + w2v(header=None), "c.tsv": CORPUS.encode()}, SRC, rows=ROWS),
    "bom-corpus": Case({"v.txt": w2v(), "c.tsv": BOM + CORPUS.encode()}, SRC, rows=ROWS),
    "blank-lines": Case({"v.txt": b"\n" + w2v().replace(b"\n", b"\n \n") + b"\n\n",
                         "c.tsv": ("\n" + CORPUS + "\n\n").encode()}, SRC, rows=ROWS),
    "crlf": Case({"v.txt": w2v(eol="\r\n"), "c.tsv": CORPUS.replace("\n", "\r\n").encode()}, SRC, rows=ROWS),
    # bad inputs
    "header-lies-count": Case({"v.txt": w2v(header="9 2"), "c.tsv": CORPUS.encode()}, SRC,
                              ("v.txt", 1, "header says 9 rows but the file has 4")),
    "header-lies-width": Case({"v.txt": w2v(header="4 3"), "c.tsv": CORPUS.encode()}, SRC,
                              ("v.txt", 2, "the header says 3 values per row, but this line and most")),
    "short-line": Case({"v.txt": w2v().replace("国 3.0 4.0".encode(), "国 3.0".encode()),
                        "c.tsv": CORPUS.encode()}, SRC, ("v.txt", 3, "expected a token and 2 values, found 1")),
    "long-line": Case({"v.txt": w2v().replace("国 3.0 4.0".encode(), "国 3.0 4.0 5.0".encode()),
                       "c.tsv": CORPUS.encode()}, SRC, ("v.txt", 3, "more than 2 values ('国' has no row")),
    "nan": Case({"v.txt": w2v().replace(b"5.0 -6.0", b"nan -6.0"), "c.tsv": CORPUS.encode()}, SRC,
                ("v.txt", 4, "non-finite value (nan or inf)")),
    "inf-npy": Case({"m.npy": npy([[1, 2], [np.inf, 4]]), "m.vocab": "中\n国\n".encode(), "c.tsv": CORPUS.encode()},
                    ["--source", "{m.npy}", "--corpus", "{c.tsv}"],
                    ("m.npy", None, "row 1 ('国', m.vocab:2): non-finite value (nan or inf)")),
    "non-utf8-corpus": Case({"v.txt": w2v(), "c.tsv": CORPUS.encode() + b"\xff\xfe\t1\n"}, SRC,
                            ("c.tsv", 3, "not valid UTF-8")),
    "non-utf8-value": Case({"v.txt": w2v().replace(b"3.0 4.0", b"3.0 \xff"), "c.tsv": CORPUS.encode()}, SRC,
                           ("v.txt", 3, "not a number: '\ufffd'")),
    "non-utf8-vocab": Case({"v.txt": w2v(), "vocab.txt": b"<pad>\n<unk>\n\xe4\xb8\n"},
                           ["--source", "{v.txt}", "--vocab", "{vocab.txt}"], ("vocab.txt", 3, "not valid UTF-8")),
    "truncated-bin": Case({"v.bin": w2v_bin()[:-7], "c.tsv": CORPUS.encode()},
                          ["--source", "{v.bin}", "--corpus", "{c.tsv}"],
                          ("v.bin", 1, "header says 4 rows but the file holds 3; record 4 is cut short")),
    "truncated-gz": Case({"v.txt.gz": gzip.compress(w2v())[:-12], "c.tsv": CORPUS.encode()},
                         ["--source", "{v.txt.gz}", "--corpus", "{c.tsv}"],
                         ("v.txt.gz", None, "compressed data is truncated or corrupt")),
    "empty-vectors": Case({"v.txt": b"", "c.tsv": CORPUS.encode()}, SRC, ("v.txt", 1, "empty vector file")),
    "blank-vectors": Case({"v.txt": b"\n \n", "c.tsv": CORPUS.encode()}, SRC, ("v.txt", 1, "empty vector file")),
    "empty-corpus": Case({"v.txt": w2v(), "c.tsv": b""}, SRC, ("c.tsv", None, "the corpus is empty")),
    "corpus-without-text": Case({"v.txt": w2v(), "c.tsv": b"\t1\n\t0\n"}, SRC,
                                ("c.tsv", 1, "the corpus is empty: no row gives a char token")),
    "empty-npy-vocab": Case({"m.npy": npy([[1, 2]]), "m.vocab": b"", "c.tsv": CORPUS.encode()},
                            ["--source", "{m.npy}", "--corpus", "{c.tsv}"], ("m.vocab", None, "empty vocabulary file")),
    "directory-as-corpus": Case({"v.txt": w2v(), "c.tsv": None}, SRC, ("c.tsv", None, "Is a directory")),
    "directory-as-vectors": Case({"v.txt": None, "c.tsv": CORPUS.encode()}, SRC + ["--source-kind", "text"],
                                 ("v.txt", None, "a directory, not a vector file")),
    "directory-as-source-vocab": Case({"m.npy": npy([[1, 2]]), "m.vocab": None, "c.tsv": CORPUS.encode()},
                                      ["--source", "{m.npy}", "--source-vocab", "{m.vocab}", "--corpus", "{c.tsv}"],
                                      ("m.vocab", None, "Is a directory")),
}
# options a text source does not take: one line naming the option and the source kind
OPTION_CASES = {
    "tensor-key-on-text": (["--tensor-key", "embeddings.weight"], "--tensor-key (tensor_key=) does not apply to a text source"),
    "source-vocab-on-text": (["--source-vocab", "{c.tsv}"], "--source-vocab (vocab=) does not apply to a text source"),
}


def _materialise(tmp_path, files, args):
    for name, content in files.items():
        if content is None:
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(content)
    names = {"{" + n + "}": str(tmp_path / n) for n in files}
    return [names.get(a, a) for a in args]


def _run(tmp_path, capsys, args):
    out = tmp_path / "out"
    rc = main(["graft", *args, "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    return rc, captured, out


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(tmp_path, capsys, name):
    case = CASES[name]
    args = _materialise(tmp_path, case.files, case.args)
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, captured, out = _run(tmp_path, capsys, args)
    if case.error is None:
        assert rc == 0, captured.err
        res = GraftResult.load(out)
        assert not [t for t in res.vocab.tokens if "\ufeff" in t or "\r" in t]
        for tok, vec in case.rows.items():
            i = res.vocab.index(tok)
            assert res.provenance[i].method == "exact", tok
            assert res.weights[i].tolist() == vec, tok
        return
    file, line, what = case.error
    where = f"{tmp_path / file}:{line}" if line is not None else f"{tmp_path / file}"
    assert rc == 2
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n")
    assert captured.err.startswith(f"embgraft graft: error: {where}: "), captured.err
    assert what in captured.err, captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary left


@pytest.mark.parametrize("name", list(OPTION_CASES))
def test_an_option_the_source_does_not_take(tmp_path, capsys, name):
    extra, message = OPTION_CASES[name]
    args = _materialise(tmp_path, {"v.txt": w2v(), "c.tsv": CORPUS.encode()}, SRC + extra)
    rc, captured, out = _run(tmp_path, capsys, args)
    assert rc == 2 and not out.exists()
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"embgraft graft: error: {message} ({tmp_path / 'v.txt'}); it takes ")


def test_skip_counts_bad_lines_in_the_report(tmp_path, capsys):
    bad = w2v().replace(b"5.0 -6.0", b"nan -6.0").replace("国 3.0 4.0".encode(), "国 3.0".encode())
    args = _materialise(tmp_path, {"v.txt": bad, "c.tsv": CORPUS.encode()}, SRC + ["--on-bad-line", "skip"])
    rc, captured, out = _run(tmp_path, capsys, args)
    assert rc == 0
    assert f"{tmp_path / 'v.txt'}: 2 malformed lines skipped, e.g. {tmp_path / 'v.txt'}:3: expected" in captured.out
    report = GraftResult.load(out).report
    assert report.sources[0]["n_skipped"] == 2


def test_a_bad_input_in_a_real_process_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    args = _materialise(tmp_path, {"v.txt.gz": gzip.compress(w2v())[:-12], "c.tsv": CORPUS.encode()},
                        ["--source", "{v.txt.gz}", "--corpus", "{c.tsv}"])
    proc = subprocess.run([sys.executable, "-m", "embgraft", "graft", *args, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"embgraft graft: error: {tmp_path / 'v.txt.gz'}: compressed data is truncated")
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
