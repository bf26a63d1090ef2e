"""``report.html``: one self-contained page for a run directory or a compare directory.

Every image is an inline base64 PNG drawn afresh from the directory's JSON/CSV files, the CSS is
inline, and there are no scripts and no external fetches (a Content-Security-Policy meta tag
forbids both). All text from the user's files is HTML-escaped. A part that is missing says so and
names the command that produces it; a part whose file is malformed shows the file:line problem;
neither stops the rest of the report.

A run directory holds ``config.json``, ``labels.txt``, ``metrics.json``, ``history.csv``,
optionally ``graft_report.json`` and ``evaluation/`` (``metrics.json``, ``errors.tsv``,
``drift.json``). A compare directory holds ``compare.json``.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from embgraft.errors import EmbgraftError, MalformedFileError
from embgraft.evaluation import plots
from embgraft.evaluation.compare import COMPARE_FILE
from embgraft.evaluation.metrics import read_errors_tsv
from embgraft.evaluation.run import DRIFT_FILE, ERRORS_FILE
from embgraft.evaluation.run import METRICS_FILE as EVAL_METRICS_FILE
from embgraft.evaluation.stats import summarise_results
from embgraft.files import FILE, atomic_file, check_writable, read_json
from embgraft.training import rundir
from embgraft.training.data import LabelSet

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
N_ERRORS = 20

_CSS = """
body{font-family:"DejaVu Sans","Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","WenQuanYi Zen Hei",
"Microsoft YaHei","PingFang SC",sans-serif;margin:2em auto;max-width:1150px;color:#222;line-height:1.45;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}h3{font-size:1.05em}
.meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:.6em 0}
.row{display:flex;flex-wrap:wrap;gap:1em}.row>figure{flex:1 1 420px;margin:0}
.na{color:#777;font-style:italic}.problem{color:#a40000;background:#fff3f3;padding:.4em .6em;
border-left:3px solid #a40000}
td.text{max-width:620px;word-break:break-all}
code{background:#f4f4f4;padding:0 .2em}
""".strip()


# -- reading ----------------------------------------------------------------------------------------
_UNREAD = object()


def read_history(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``history.csv`` (one dict of strings per epoch); the header must include
    ``epoch``. A row with the wrong number of fields is a ``MalformedFileError``."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "epoch" not in header:
            raise MalformedFileError(path, 1, f"header must name the columns ({','.join(rundir.HISTORY_FIELDS)})")
        for values in reader:
            if not values:
                continue
            if len(values) != len(header):
                raise MalformedFileError(path, reader.line_num,
                                         f"expected {len(header)} comma-separated fields, got {len(values)}")
            rows.append(dict(zip(header, values)))
    return rows


# -- HTML pieces ------------------------------------------------------------------------------------
def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
            return f"{x:.3g}"
        if abs(x) >= 100:
            return f"{x:,.1f}"
        return f"{x:.{digits}f}"
    return str(x)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: Sequence[bool] | None = None,
           classes: Sequence[str] | None = None) -> str:
    """An escaped HTML table; cells are formatted with ``_fmt`` unless they are already ``_Raw``."""
    numeric = numeric or [False] * len(header)
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>")
        for i, c in enumerate(r):
            cls = []
            if numeric[i]:
                cls.append("num")
            if classes and classes[i]:
                cls.append(classes[i])
            attr = f' class="{" ".join(cls)}"' if cls else ""
            out.append(f"<td{attr}>{c if isinstance(c, _Raw) else _e(_fmt(c))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


class _Raw(str):
    """HTML already escaped."""


def _na(what: str, hint: str | None = None) -> str:
    text = f"{_e(what)}: not available"
    if hint:
        text += f" (run <code>{_e(hint)}</code>)"
    return f'<p class="na">{text}</p>'


def _problem(e: Exception) -> str:
    return f'<p class="problem">could not be shown: {_e(e)}</p>'


class _Images:
    """Draws plots into a private temporary directory and returns them as inline ``<img>`` tags."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.n = 0

    def img(self, draw: Callable[[Path], Path], alt: str) -> str:
        self.n += 1
        path = draw(self.tmp / f"{self.n}.png")
        return self.inline(path.read_bytes(), alt)

    @staticmethod
    def inline(png: bytes, alt: str) -> str:
        data = base64.b64encode(png).decode("ascii")
        return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _section(title: str, anchor: str, body: Callable[[], str]) -> str:
    try:
        content = body()
    except (EmbgraftError, OSError, KeyError, TypeError, ValueError, IndexError) as e:
        log.warning("report section %r: %s", title, e)
        content = _problem(e)
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>\n{content}\n</section>'


def _page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="zh-Hans">',
        "<head>",
        '<meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(subtitle)} · written {_e(now)} by embgraft</p>',
        *sections,
        "</body>",
        "</html>",
        "",
    ])


# -- a run directory --------------------------------------------------------------------------------
@dataclass
class _RunPage:
    """What the sections of a run's page share: its folder, the image maker, and files read once."""

    run: Path
    images: _Images
    config: dict | None = None
    _metrics: Any = field(default=_UNREAD, repr=False)

    @property
    def evaluation(self) -> Path:
        return self.run / rundir.EVALUATION_DIR

    @property
    def evaluate_hint(self) -> str:
        return f"embgraft evaluate {self.run} --data FILE"

    def eval_metrics(self) -> dict[str, Any] | None:
        """``evaluation/metrics.json``, read once for the four sections that show it."""
        if self._metrics is _UNREAD:
            self._metrics = read_json(self.evaluation / EVAL_METRICS_FILE, default=None)
        return self._metrics


def _run_config(page: _RunPage) -> str:
    cfg = read_json(page.run / rundir.CONFIG_FILE, default=None, expect=dict)
    if cfg is None:
        return _na(rundir.CONFIG_FILE)
    page.config = cfg
    rows = [(k, _Raw(_e(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))))
            for k, v in cfg.items() if v is not None and v != {}]
    out = _table(["setting", "value"], rows)
    unset = [k for k, v in cfg.items() if v is None or v == {}]
    if unset:
        out += f'<p class="meta">unset (defaults of the model or data): {_e(", ".join(unset))}</p>'
    labels_file = page.run / rundir.LABELS_FILE
    if labels_file.is_file():
        labels = LabelSet.load(labels_file).names
        out += f"<p>{len(labels)} classes: {_e('、'.join(labels))}</p>"
    return out


def _run_results(page: _RunPage) -> str:
    m = read_json(page.run / rundir.METRICS_FILE, default=None)
    if m is None:
        return _na(rundir.METRICS_FILE, "embgraft train ...")
    multi = m.get("task") == "multi_label"
    columns = ((("micro_f1", "micro-F1"), ("macro_f1", "macro-F1"), ("accuracy", "subset accuracy"),
                ("hamming_loss", "Hamming loss"), ("loss", "loss (BCE)")) if multi
               else (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("loss", "loss")))
    rows = [(split, *(m[split].get(k) for k, _ in columns)) for split in ("dev", "test")
            if isinstance(m.get(split), dict)]
    out = _table(["split", *(name for _, name in columns)], rows, numeric=[False] + [True] * len(columns)) if rows \
        else _na("dev/test metrics")
    if multi:
        out += ("<p>multi-label: each label's threshold was tuned on dev (its best F1), so the dev scores are "
                "optimistic; test is scored at the same thresholds.</p>")
    extra = [(k, m[k]) for k in ("task", "metric", "best_epoch", "epochs_run", "n_train", "n_unlabelled", "n_augmented",
                                 "train_seconds", "samples_per_s", "device", "amp", "world_size", "class_weights",
                                 "focal_gamma", "thresholds")
             if k in m and m[k] is not None]
    if extra:
        out += _table(["", "value"], extra, numeric=[False, True])
    return out


def _run_coverage(page: _RunPage) -> str:
    report = read_json(page.run / rundir.GRAFT_REPORT_FILE, default=None)
    if report is None:
        if (page.config or {}).get("random_init"):
            return '<p class="na">not available: this run starts from a random initialisation, no graft</p>'
        return _na(f"{rundir.GRAFT_REPORT_FILE} (graft coverage)", "embgraft train --graft GRAFT_DIR ...")
    methods = report.get("methods") or {}
    rows = [(m, v.get("n_types"), "" if m == "special" else f"{100 * v.get('share_types', 0.0):.2f}",
             v.get("n_tokens"), f"{100 * v.get('share_tokens', 0.0):.2f}") for m, v in methods.items()]
    out = _table(["method", "types", "% types", "tokens", "% tokens"], rows,
                 numeric=[False, True, True, True, True])
    facts = [(k, report[k]) for k in ("n_types", "n_corpus_tokens", "n_oov_tokens", "dim") if k in report]
    if facts:
        out += _table(["", "value"], facts, numeric=[False, True])
    if report.get("init_sample"):
        sample = " ".join(f"{t}({c})" for t, c in report["init_sample"])
        out += f"<p>left to init, most frequent first: {_e(sample)}</p>"
    return out + page.images.img(lambda p: plots.plot_coverage(report, p), "graft coverage by provenance method")


def _run_history(page: _RunPage) -> str:
    f = page.run / rundir.HISTORY_FILE
    if not f.is_file():
        return _na(f"{rundir.HISTORY_FILE} (training curves)", "embgraft train ...")
    rows = read_history(f)
    return page.images.img(lambda p: plots.plot_history(rows, p), "training curves")


def _run_metrics(page: _RunPage) -> str:
    m = page.eval_metrics()
    if m is None:
        return _na("evaluation metrics", page.evaluate_hint)
    head = f"<p>data: <code>{_e(m.get('data', '?'))}</code>, {_fmt(m.get('n_examples'))} examples</p>"
    if m.get("task") == "multi_label":
        return head + _multilabel_metrics(m)
    rows = [(name, v["precision"], v["recall"], v["f1"], v["support"]) for name, v in m["per_class"].items()]
    total = sum(v["support"] for v in m["per_class"].values())
    rows += [(f"{a} avg", m[a]["precision"], m[a]["recall"], m[a]["f1"], total)
             for a in ("macro", "micro", "weighted")]
    out = head + _table(["class", "precision", "recall", "F1", "support"], rows,
                        numeric=[False, True, True, True, True])
    roc, pr = m.get("roc", {}), m.get("pr", {})
    binary = roc.get("kind") == "binary"
    summary = [("accuracy", m["accuracy"]), ("log loss", m["log_loss"]),
               (f"ROC AUC ({roc.get('positive')})" if binary else "ROC AUC (macro, one-vs-rest)", roc.get("auc")),
               (f"average precision ({pr.get('positive')})" if binary else "average precision (macro)",
                pr.get("average_precision")),
               (f"ECE ({m['calibration']['n_bins']} bins)", m["calibration"]["ece"])]
    out += _table(["", "value"], summary, numeric=[False, True])
    if m.get("classes_absent"):
        out += f"<p>no example in the evaluation data of: {_e('、'.join(m['classes_absent']))}</p>"
    if roc.get("note"):
        out += f"<p>AUC and AP: {_e(roc['note'])}</p>"
    return out


def _multilabel_metrics(m: dict[str, Any]) -> str:
    """The per-label table (threshold, precision, recall, F1, support) and the multi-label summary."""
    rows = [(name, m["thresholds"][name], v["precision"], v["recall"], v["f1"], v["support"])
            for name, v in m["per_class"].items()]
    rows += [(f"{a} avg", "", m[a]["precision"], m[a]["recall"], m[a]["f1"], "")
             for a in ("macro", "micro", "weighted", "samples")]
    out = _table(["label", "threshold", "precision", "recall", "F1", "support"], rows,
                 numeric=[False, True, True, True, True, True])
    summary = [("subset accuracy", m["subset_accuracy"]), ("Hamming loss", m["hamming_loss"]),
               ("label-ranking average precision", m["label_ranking_average_precision"]),
               ("log loss (per label)", m["log_loss"]), ("ROC AUC (macro over labels)", m["roc"].get("auc")),
               ("average precision (macro)", m["pr"].get("average_precision")),
               ("labels per text, true", m["cardinality"]["true"]),
               ("labels per text, predicted", m["cardinality"]["predicted"])]
    out += _table(["", "value"], summary, numeric=[False, True])
    if m.get("classes_absent"):
        out += f"<p>no example in the evaluation data of: {_e('、'.join(m['classes_absent']))}</p>"
    return out


def _run_confusion(page: _RunPage) -> str:
    m = page.eval_metrics()
    if m is None:
        return _na("confusion matrix", page.evaluate_hint)
    if m.get("task") == "multi_label":  # no confusion between labels a text may share: scores per label
        return ("<p>multi-label: a text may hold several labels, so there is no confusion between them; "
                "precision, recall and F1 of each label instead.</p>"
                + page.images.img(lambda p: plots.plot_per_label(m, p), "precision, recall and F1 per label"))
    return page.images.img(lambda p: plots.plot_confusion(m["confusion"]["counts"], m["labels"], p),
                           "confusion matrix")


def _run_curves(page: _RunPage) -> str:
    m = page.eval_metrics()
    if m is None:
        return _na("ROC and precision-recall curves", page.evaluate_hint)
    roc = page.images.img(lambda p: plots.plot_roc(m, p), "ROC curves")
    pr = page.images.img(lambda p: plots.plot_pr(m, p), "precision-recall curves")
    out = f'<div class="row"><figure>{roc}</figure><figure>{pr}</figure></div>'
    undefined = m.get("roc", {}).get("undefined") or {}
    if undefined:
        out += "<p>no curve for: " + _e("; ".join(f"{k} ({v})" for k, v in undefined.items())) + "</p>"
    return out


def _run_calibration(page: _RunPage) -> str:
    m = page.eval_metrics()
    if m is None:
        return _na("calibration", page.evaluate_hint)
    cal = m["calibration"]
    text = (f"<p>expected calibration error {_fmt(cal['ece'])} over {cal['n_bins']} equal-width bins of "
            f"confidence ({_e(cal.get('confidence') or 'max probability')}).</p>")
    return text + page.images.img(lambda p: plots.plot_reliability(m, p), "reliability diagram")


def _neighbour_words(xs: list[dict[str, Any]]) -> str:
    return " ".join(f"{x['token']}({x['similarity']:.2f})" for x in xs)


def _run_drift(page: _RunPage) -> str:
    d = read_json(page.evaluation / DRIFT_FILE, default=None)
    if d is None:
        return _na("embedding drift", page.evaluate_hint)
    rows = []
    for method, v in d["per_method"].items():
        rows.append((method, v["n_rows"], v["n_unchanged"], v["l2"]["mean"], v["l2"]["median"], v["l2"]["max"],
                     v["cosine"]["mean"], v["cosine"]["max"]))
    out = _table(["method", "rows", "unchanged", "L2 mean", "L2 median", "L2 max", "cosine mean", "cosine max"],
                 rows, numeric=[False] + [True] * 7)
    out += page.images.img(lambda p: plots.plot_drift(d, p), "embedding drift per provenance method")
    if d.get("neighbours"):
        nrows = [(x["token"], x["method"], x["count"], x["l2"], _neighbour_words(x["before"]),
                  _neighbour_words(x["after"]), x["kept"]) for x in d["neighbours"]]
        out += "<h3>nearest neighbours (cosine) of frequent tokens, before and after fine-tuning</h3>"
        out += _table(["token", "method", "count", "L2 moved", "before", "after", "kept"], nrows,
                      numeric=[False, False, True, True, False, False, True])
    if d.get("most_moved"):
        mrows = [(x["token"], x["method"], x["count"], x["l2"], x["cosine"]) for x in d["most_moved"]]
        out += "<h3>rows that moved most</h3>" + _table(["token", "method", "count", "L2", "cosine"], mrows,
                                                        numeric=[False, False, True, True, True])
    return out


def _run_errors(page: _RunPage) -> str:
    f = page.evaluation / ERRORS_FILE
    if not f.is_file():
        return _na("most confident errors", page.evaluate_hint)
    errs = read_errors_tsv(f)[:N_ERRORS]
    if not errs:
        return "<p>no errors: every example was classified correctly.</p>"
    rows = [(i + 1, e["text"], e["gold"], e["predicted"], e["probability"]) for i, e in enumerate(errs)]
    return _table(["#", "text", "gold", "predicted", "probability"], rows,
                  numeric=[True, False, False, False, True], classes=["", "text", "", "", ""])


# (title, anchor, section) in page order; the configuration comes first: coverage reads it
RUN_SECTIONS: tuple[tuple[str, str, Callable[[_RunPage], str]], ...] = (
    ("Run configuration", "config", _run_config), ("Training results", "results", _run_results),
    ("Graft coverage", "coverage", _run_coverage), ("Training curves", "history", _run_history),
    ("Metrics", "metrics", _run_metrics), ("Confusion matrix", "confusion", _run_confusion),
    ("ROC and precision-recall", "curves", _run_curves), ("Calibration", "calibration", _run_calibration),
    ("Embedding drift", "drift", _run_drift), (f"The {N_ERRORS} most confident errors", "errors", _run_errors),
)


def _run_sections(run: Path, images: _Images) -> list[str]:
    page = _RunPage(run, images)
    return [_section(title, anchor, lambda section=section: section(page)) for title, anchor, section in RUN_SECTIONS]


# -- a compare directory ----------------------------------------------------------------------------
def _pm(mean: Any, sd: Any) -> str:
    if mean is None:
        return "–"
    return f"{mean:.4f} ± {sd:.4f}" if isinstance(sd, (int, float)) and not math.isnan(sd) else f"{mean:.4f}"


def _frac(x: Any) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else _fmt(x)


def _compare_sections(cmp: Path, images: _Images) -> list[str]:
    data = read_json(cmp / COMPARE_FILE, expect=dict)

    def setups() -> str:
        s = data.get("setups") or []
        if not s:
            return _na("set-ups")
        rows = [(x.get("name"), x.get("model"), x.get("embedding"), x.get("random_init"), x.get("graft_dir"))
                for x in s]
        return _table(["set-up", "model", "embedding", "random init", "graft"], rows)

    def summary() -> str:
        rows_in = list(data.get("summary") or [])
        base = data.get("baseline")
        note = ""
        if not rows_in and data.get("results"):  # summarise the runs here
            rows_in = summarise_results(data["results"])
            note = "<p>summary computed from the per-run results (compare.json has none).</p>"
        if not rows_in and not base:
            return _na("summary")
        rows = [(r.get("setup"), _frac(r.get("train_fraction")), r.get("n_seeds"),
                 _pm(r.get("accuracy_mean"), r.get("accuracy_sd")), _pm(r.get("macro_f1_mean"), r.get("macro_f1_sd")),
                 r.get("vs"), r.get("p_value"), r.get("test")) for r in rows_in]
        for b in data.get("baselines") or ([base] if base else []):  # one per train fraction
            rows.append((f"{b.get('name') or b.get('setup')} (baseline)", _frac(b.get("train_fraction")),
                         b.get("n_seeds"), _pm(b.get("accuracy_mean"), b.get("accuracy_sd")),
                         _pm(b.get("macro_f1_mean"), b.get("macro_f1_sd")), b.get("vs"),
                         b.get("p_value"), b.get("test")))
        out = _table(["set-up", "train fraction", "seeds", "accuracy (mean ± sd)", "macro-F1 (mean ± sd)",
                      "vs", "p-value", "test"], rows, numeric=[False, True, True, True, True, False, True, False])
        tests = {r.get("test") for r in rows_in if r.get("test")}
        if tests:
            out += (f"<p>p-value: paired test of each set-up against the one named under “vs” on the same test "
                    f"items ({_e(', '.join(sorted(tests)))}).</p>")
        curve = data.get("baselines") or base
        return note + out + images.img(lambda p: plots.plot_compare(rows_in, p, baseline=curve),
                                       "set-ups compared, with learning curve when several train fractions")

    def results() -> str:
        rs = data.get("results") or []
        if not rs:
            return _na("per-run results")
        rows = [(r.get("setup"), r.get("seed"), _frac(r.get("train_fraction")), (r.get("test") or {}).get("accuracy"),
                 (r.get("test") or {}).get("macro_f1"), r.get("run_dir")) for r in rs]
        return _table(["set-up", "seed", "train fraction", "test accuracy", "test macro-F1", "run directory"], rows,
                      numeric=[False, True, True, True, True, False])

    parts = [("Set-ups", "setups", setups), ("Summary over seeds", "summary", summary),
             ("Every run", "results", results)]
    return [_section(t, a, b) for t, a, b in parts]


# -- entry point ------------------------------------------------------------------------------------
def write_report(path: str | os.PathLike, *, out: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Writes ``report.html`` for the run directory or compare directory ``path``; returns its path.

    ``out`` defaults to ``path/report.html``. The page is self-contained (inline PNGs and CSS, no
    scripts, no network); written atomically, an existing file needs ``force``. Raises
    ``EmbgraftError`` when ``path`` is neither kind of directory.
    """
    src = Path(path)
    if not src.is_dir():
        raise EmbgraftError(f"{src} is not a directory")
    target = Path(out) if out is not None else src / REPORT_FILE
    check_writable(target, force=force, kind=FILE)  # fail before drawing anything
    is_compare = (src / COMPARE_FILE).is_file()
    is_run = any((src / f).is_file() for f in (rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.LABELS_FILE))
    if not (is_compare or is_run):
        raise EmbgraftError(f"{src} is neither a run directory ({rundir.CONFIG_FILE}, {rundir.METRICS_FILE}) "
                            f"nor a compare directory ({COMPARE_FILE})")
    with tempfile.TemporaryDirectory(prefix="embgraft-report-") as tmp:
        images = _Images(Path(tmp))
        if is_compare:
            sections = _compare_sections(src, images)
            title = f"embgraft comparison: {src.resolve().name}"
        else:
            sections = _run_sections(src, images)
            title = f"embgraft run: {src.resolve().name}"
        page = _page(title, str(src.resolve()), sections)
    with atomic_file(target, force=force) as f:
        f.write(page)
    return target
