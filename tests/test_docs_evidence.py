"""The README and docs point to committed evidence: every link and every
`docs/results/...` path they name exists, and the confirmatory folders belong to one
frozen profile (the same resolved-config hash for every dataset and the pool)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)\)")
RESULTS = re.compile(r"docs/results/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/?")
CONFIRM = ROOT / "docs" / "results" / "confirm-5b7b0f6"


def _named_paths(doc: Path) -> list[tuple[str, Path]]:
    text = doc.read_text(encoding="utf-8")
    named = []
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        named.append((target, (doc.parent / target).resolve()))
    for target in RESULTS.findall(text):
        if "/NAME" in target:  # the placeholder of a usage line
            continue
        named.append((target, (ROOT / target).resolve()))
    return named


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_file_exists(doc):
    missing = [t for t, p in _named_paths(doc) if not p.exists()]
    assert not missing, f"{doc.relative_to(ROOT)} names files that are not committed: {missing}"


def test_the_scan_finds_what_the_readme_names():
    # guards the test above against a regex that silently matches nothing
    targets = {t for t, _ in _named_paths(ROOT / "README.md")}
    assert "docs/results/confirm-5b7b0f6/pooled/oof.csv" in targets
    assert any(t.endswith("effect.png") for t in targets)


def test_confirmatory_folders_share_one_frozen_profile():
    folders = ["phantom2001", "phantom2002", "phantom2003", "pooled"]
    hashes = {f: (CONFIRM / f / "profile.sha256").read_text().split()[0] for f in folders}
    assert len(set(hashes.values())) == 1, hashes
    assert re.fullmatch(r"[0-9a-f]{64}", hashes["pooled"])


def test_pooled_confirmation_holds_each_dataset_once():
    with open(CONFIRM / "pooled" / "oof.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["method"] == "baseline" and r["seed"] == "0"]
    pooled = {r["patient_id"] for r in rows}
    each = set()
    for name in ("phantom2001", "phantom2002", "phantom2003"):
        with open(CONFIRM / name / "oof.csv", newline="") as fh:
            ids = {
                r["patient_id"]
                for r in csv.DictReader(fh)
                if r["method"] == "baseline" and r["seed"] == "0"
            }
        assert ids, name
        each |= {(name, i) for i in ids}
    # every patient of every dataset tested once, none merged across datasets
    assert len(pooled) == len(each) == 144
    assert len(rows) == len({(r["case_id"], r["patient_id"]) for r in rows})
