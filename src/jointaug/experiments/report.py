"""``jointaug report RUN``: tables, figures and one self-contained ``report.html``.

Reads what the classification stage left in ``RUN/results`` (``metrics.csv``,
``per_label.csv``, ``table1.md``, ``table2.md``, ``stats.csv``, ``per_joint.md``,
``profile.sha256``) and the augmentation sets under
``RUN/fold_K/augment``; draws ``fig6.png``, ``per_joint.png`` and
``real_vs_synthetic.png``; and writes ``report.html`` with every picture embedded
(base64), readable offline.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import os
from pathlib import Path

from jointaug.curves import PROGRESS
from jointaug.dataset.format import is_complete, read_dataset
from jointaug.experiments import figures
from jointaug.experiments.provenance import profile_hash, read_profile_hash
from jointaug.experiments.rundir import RunDir
from jointaug.experiments.stats import read_stats
from jointaug.files import write_text_atomic


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def markdown_table_to_html(md: str) -> str:
    """Render the pipe tables (and plain paragraphs) of a small markdown file."""
    out, rows = [], []

    def flush():
        if rows:
            head, *body = rows
            out.append(
                "<table><thead><tr>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                + "</tr></thead><tbody>"
                + "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                    for r in body
                )
                + "</tbody></table>"
            )
            rows.clear()

    for line in md.splitlines():
        s = line.strip()
        if s.startswith("|") and s.endswith("|"):
            cells = [c.strip() for c in s.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        flush()
        if s.startswith("#"):
            level = min(len(s) - len(s.lstrip("#")) + 1, 4)
            out.append(f"<h{level}>{html.escape(s.lstrip('#').strip())}</h{level}>")
        elif s:
            out.append(f"<p>{html.escape(s)}</p>")
    flush()
    return "\n".join(out)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}
thead{background:#f3f3f3} img{max-width:100%} figure{margin:1.5em 0}
figcaption{color:#666;font-size:13px} code{background:#f5f5f5;padding:1px 4px}
.curves{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:0 12px}
.curves figure{margin:0.5em 0} details{margin:0.8em 0} summary{cursor:pointer}
"""


def synthetic_sets(run: RunDir, fold: int) -> dict:
    root = run.augment_root(fold)
    if not root.is_dir():
        return {}
    return {p.name: read_dataset(p) for p in sorted(root.iterdir()) if is_complete(p)}


def fidelity_rows(run: RunDir) -> list[dict]:
    """One row per augmentation set with a fidelity record (``fold_K/augment/NAME/fidelity.json``)."""
    from jointaug.fidelity.measure import read_fidelity

    rows = []
    for fold in range(len(run.splits.folds)):
        root = run.augment_root(fold)
        if not root.is_dir():
            continue
        for p in sorted(root.iterdir()):
            rec = read_fidelity(p)
            if rec is None:
                continue
            lf = rec.get("label_fidelity", {})
            ratio = rec.get("intensity", {}).get("ratio", {})
            real = rec.get("realism", {})
            rows.append(
                {
                    "fold": fold,
                    "set": p.name,
                    "n": rec.get("n"),
                    "baseline_gms": lf.get("baseline", {}).get("synthetic", {}).get("gms"),
                    "baseline_real_gms": lf.get("baseline", {}).get("real", {}).get("gms"),
                    "baseline_ratio": lf.get("baseline", {}).get("ratio"),
                    "strong_gms": lf.get("strong", {}).get("synthetic", {}).get("gms"),
                    "strong_ratio": lf.get("strong", {}).get("ratio"),
                    "normal": ratio.get("normal"),
                    "low": ratio.get("low"),
                    "high": ratio.get("high"),
                    "total": ratio.get("total"),
                    "matched_ratio": rec.get("matched_label_fidelity", {})
                    .get("baseline", {})
                    .get("ratio"),
                    "matched_strong_ratio": rec.get("matched_label_fidelity", {})
                    .get("strong", {})
                    .get("ratio"),
                    "near_copies": rec.get("memorisation", {}).get("near_copies"),
                    "fid": real.get("synthetic", {}).get("fid"),
                    "fid_real": real.get("real_test", {}).get("fid"),
                }
            )
    for (
        r
    ) in rows:  # label fidelity relative to the oracle set of the same fold (a perfect generator)
        oracle = next((o for o in rows if o["fold"] == r["fold"] and o["set"] == "oracle"), None)
        key = "strong_gms" if r["strong_gms"] is not None else "baseline_gms"
        r["oracle_ratio"] = (
            r[key] / oracle[key] if oracle and r[key] is not None and oracle[key] else None
        )
    return rows


FIDELITY_COLUMNS = (
    ("fold", "Fold"),
    ("set", "Set"),
    ("n", "N"),
    ("baseline_gms", "Baseline judge GMS"),
    ("baseline_real_gms", "on real test"),
    ("baseline_ratio", "Ratio"),
    ("strong_gms", "Strong judge GMS"),
    ("strong_ratio", "Ratio (strong)"),
    ("oracle_ratio", "x oracle"),
    ("matched_ratio", "Real maps ratio"),
    ("matched_strong_ratio", "Real maps ratio (strong)"),
    ("normal", "Normal x real"),
    ("low", "Low x real"),
    ("high", "High x real"),
    ("total", "Total x real"),
    ("near_copies", "Near-copies"),
    ("fid", "FID"),
    ("fid_real", "FID real test"),
)


def fidelity_markdown(rows: list[dict]) -> str:
    """The fidelity table (markdown); empty string when no set has a record."""
    if not rows:
        return ""

    def cell(v) -> str:
        if v is None:
            return "n/a"
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = [
        "| " + " | ".join(t for _, t in FIDELITY_COLUMNS) + " |",
        "|" + "---|" * len(FIDELITY_COLUMNS),
    ]
    lines += ["| " + " | ".join(cell(r[k]) for k, _ in FIDELITY_COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def fidelity_section(run: RunDir) -> str:
    """HTML of the fidelity records (also written as ``results/fidelity.md``); '' when none."""
    md = fidelity_markdown(fidelity_rows(run))
    if not md:
        return ""
    write_text_atomic(run.results_dir / "fidelity.md", md)
    return (
        "<h2>Fidelity of the augmentation sets</h2>"
        "<p>Label fidelity: a judge trained on real images scores the synthetic images against "
        "their sampled labels (ratio = its GMS on them / on the real test part; the strong judge "
        "is trained on many extra phantom patients; x oracle: relative to the phantom renderer's own set "
        "for the same kind of sampled conditions; real maps: the generator drawn on the real test "
        "images' clinician maps, where a perfect generator scores 1). Intensity: mean counts per region, synthetic / "
        "real. Near-copies: synthetic images closer to a train image than real images are to each "
        "other. FID: on the baseline model's features, against the real train images.</p>"
        + markdown_table_to_html(md)
    )


def stats_section(run: RunDir) -> str:
    """HTML of the verdicts (``results/stats.csv``): one line per method against the
    baseline and its controls, single models and seed ensembles; '' when there are none."""
    from jointaug.experiments.verdicts import verdict_lines

    rows = read_stats(run.results_dir / "stats.csv")
    if not rows:
        return ""
    parts = [
        "<h2>Does it help? Paired statistics</h2>"
        "<p>Pooled out-of-fold predictions (every patient tested once per seed); each method "
        "against the baseline, synthetic sets also against the controls of the same size "
        "(oversample, oversample-prev, shuffled; strongest first) and mp-perlin against mp: "
        "ΔGMS at 0.5, ΔGMS at thresholds tuned on each model's validation part, ΔAUPRC. "
        "Paired patient-cluster bootstrap (single models: each fold's seed redrawn too), "
        "percentile 95% CI, Holm over each table. <b>helps</b> / <b>hurts</b>: Holm p &lt; "
        "0.05 and the CI excludes 0; <b>equivalent</b>: 90% CI within the margin (TOST); "
        "else <b>inconclusive</b>. A synthetic set's headline is judged against its "
        "controls at tuned thresholds and on AUPRC.</p>"
    ]
    for table, title in (
        ("single", "Single models"),
        ("ensemble", "Seed ensembles (conditional on the trained models)"),
    ):
        lines = verdict_lines([r for r in rows if r["models"] == table])
        if lines:
            items = "".join(
                "<li>" + html.escape(line).replace("\n", "<br>") + "</li>" for line in lines
            )
            parts.append(f"<h3>{title}</h3><ul>{items}</ul>")
    return "".join(parts)


def per_joint_section(run: RunDir) -> str:
    """HTML of ``results/per_joint.md`` ('' when missing)."""
    path = run.results_dir / "per_joint.md"
    if not path.is_file():
        return ""
    return "<h2>Per joint (pooled out-of-fold)</h2>" + markdown_table_to_html(
        path.read_text(encoding="utf-8")
    )


CURVES_EMBED_MAX = 24  # classifier progress.png embedded up to this many; linked beyond


def _curve(path: Path, res: Path, caption: str, embed: bool) -> str:
    """One training's progress.png: embedded (with a link to the file) or a link only."""
    href = html.escape(Path(os.path.relpath(path, res)).as_posix())
    if not embed:
        return f'<a href="{href}">{html.escape(caption)}</a>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><a href="{href}"><img alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{data}"></a><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _classifier_links(found: list[Path], res: Path) -> str:
    """A table: one row per method folder, one cell per fold with a link per seed
    (``found``: ``fold_K/classify/METHOD/seed_S/progress.png`` files)."""

    def fold_key(name: str) -> tuple[int, str]:
        tail = name.removeprefix("fold_")
        return (int(tail), name) if tail.isdigit() else (1 << 30, name)

    folds = sorted({p.parts[-5] for p in found}, key=fold_key)
    rows = []
    for method in sorted({p.parts[-3] for p in found}):
        cells = []
        for fold in folds:
            seeds = [p for p in found if p.parts[-5] == fold and p.parts[-3] == method]
            cells.append(
                " ".join(_curve(p, res, p.parts[-2].replace("seed_", "s"), False) for p in seeds)
            )
        rows.append(
            f"<tr><td>{html.escape(method)}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    head = "".join(f"<th>{html.escape(f.replace('_', ' '))}</th>" for f in folds)
    return f"<table><thead><tr><th>Method</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def curves_section(run: RunDir) -> str:
    """HTML of the trainings' ``progress.png`` (:mod:`jointaug.curves`): each fold's
    diffusion model embedded; the classifiers in a table of links (method x fold, a link
    per seed; relative to ``results/``), embedded too when at most CURVES_EMBED_MAX."""
    res = run.results_dir
    diffusion = [run.diffusion_dir(f) / PROGRESS for f in range(len(run.splits.folds))]
    diffusion = [p for p in diffusion if p.is_file()]
    found = [p / PROGRESS for p in run.classify_dirs() if (p / PROGRESS).is_file()]
    if not diffusion and not found:
        return ""
    parts = [
        "<h2>Training curves</h2><p>Each training's <code>progress.png</code> (beside its "
        "model): losses, validation metrics, learning rate, speed. Live, with the tensorboard "
        f"extra: <code>tensorboard --logdir {html.escape(str(run.path))}</code>.</p>"
    ]
    if diffusion:
        figs = "".join(
            _curve(p, res, f"diffusion, {p.parts[-3].replace('_', ' ')}", True) for p in diffusion
        )
        parts.append(
            f"<details open><summary>Diffusion models ({len(diffusion)})</summary><div class='curves'>{figs}</div></details>"
        )
    if found:
        parts.append(f"<details><summary>Classifiers ({len(found)} trainings)</summary>")
        parts.append(_classifier_links(found, res))
        if len(found) <= CURVES_EMBED_MAX:
            figs = "".join(_curve(p, res, "/".join(p.parts[-5:-1]), True) for p in found)
            parts.append(f"<div class='curves'>{figs}</div>")
        parts.append("</details>")
    return "".join(parts)


def write_report(run: RunDir) -> Path:
    """Draw the figures and write ``RUN/results/report.html``; return its path."""
    res = run.results_dir
    res.mkdir(parents=True, exist_ok=True)
    pictures = _pictures(run, res)
    parts = _head(run)
    for name, title in (
        ("table1.md", "Table 1: single models (mean ± std over folds)"),
        ("table2.md", "Table 2: seed ensembles (mean ± std over folds)"),
    ):
        if (res / name).is_file():
            parts.append(f"<h2>{title}</h2>")
            parts.append(markdown_table_to_html((res / name).read_text(encoding="utf-8")))
    parts.append(stats_section(run))
    parts.append(per_joint_section(run))
    parts.append(fidelity_section(run))
    for path, caption in pictures:
        parts.append(_img(path, caption))
    parts.append(curves_section(run))
    parts.append("<h2>Files</h2><ul>")
    for p in sorted(res.iterdir()):
        if p.suffix in (".csv", ".md", ".png") and not p.name.startswith("."):
            parts.append(f"<li><code>results/{html.escape(p.name)}</code></li>")
    parts.append("</ul></body></html>")
    out = res / "report.html"
    write_text_atomic(out, "\n".join(parts))
    return out


def _pictures(run: RunDir, res: Path) -> list[tuple[Path, str]]:
    """The report's figures (drawn now from the results) and pictures of the run."""
    metrics = read_rows(res / "metrics.csv")
    per_label = read_rows(res / "per_label.csv")
    pictures: list[tuple[Path, str]] = []
    if metrics:
        pictures.append(
            (
                figures.fig6(metrics, res / "fig6.png"),
                "Fig. 6: test metrics against augmentation size (0 = baseline)",
            )
        )
    effect = figures.effect_figure(read_stats(res / "stats.csv"), res / "effect.png")
    if effect is not None:
        pictures.append(
            (
                effect,
                "Effect against set size: difference to the baseline at tuned thresholds and"
                " in AUPRC, patient-level 95 % intervals (results/stats.csv)",
            )
        )
    per_joint = figures.per_joint_figure(per_label, res / "per_joint.png")
    if per_joint is not None:
        pictures.append(
            (
                per_joint,
                "Per-joint TPR and TNR on the test parts, per method and set size",
            )
        )
    sets = {}
    for fold in range(len(run.splits.folds)):
        sets = synthetic_sets(run, fold)
        if sets:
            break
    if sets:
        pictures.append(
            (
                figures.real_vs_synthetic(run.dataset, sets, res / "real_vs_synthetic.png"),
                "Real images (top row) and synthetic images of each augmentation set",
            )
        )
    for fold in range(len(run.splits.folds)):
        samples = run.diffusion_dir(fold) / "samples.png"
        if samples.is_file():
            pictures.append(
                (
                    samples,
                    f"Diffusion model of fold {fold}: real vs generated for the same condition",
                )
            )
            break
    montage = run.path.parent / "montage.png"
    if montage.is_file():
        pictures.insert(
            0, (montage, "The dataset: images, tissue and region maps, per-joint prevalence")
        )
    return pictures


def _head(run: RunDir) -> list[str]:
    """The report's first lines: title, dataset, profile and its hash."""
    cfg = run.config
    return [
        "<!doctype html><html><head><meta charset='utf-8'><title>jointaug report</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>jointaug report: {html.escape(run.path.name)}</h1>",
        f"<p>Dataset <code>{html.escape(cfg.dataset)}</code>, profile <code>{cfg.profile}</code>, "
        f"{len(run.splits.folds)} folds, seeds {cfg.classify.seeds}, classifier at "
        f"{cfg.classify.image_size}px, diffusion at {cfg.diffusion.image_size}px with "
        f"{cfg.diffusion.timesteps} steps. Written {dt.datetime.now():%Y-%m-%d %H:%M}.</p>",
        f"<p>frozen profile: <code>{read_profile_hash(run) or profile_hash(cfg)}</code> "
        "(sha256 of the resolved config without the dataset path)</p>",
    ]
