"""Progress without a terminal: plain lines (per evaluation / per minute), never redrawn bars."""

import io

from jointaug.progress import LineProgress, progress_bar, progress_iter


def test_line_progress_prints_one_line_per_evaluation_and_at_the_end():
    buf = io.StringIO()
    bar = LineProgress(
        total=1000,
        desc="fold 0 · baseline",
        unit="img",
        every_s=3600,
        line_per_postfix=True,
        stream=buf,
    )
    for step in range(1000):
        bar.update(1)
        if step in (499, 999):
            bar.set_postfix(loss="0.123", best_gms="0.650")
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in buf.getvalue()
    assert lines[0].startswith("fold 0 · baseline: 500/1,000 img") and "best_gms=0.650" in lines[0]
    assert lines[-1].startswith("fold 0 · baseline: 1,000/1,000 img")


def test_line_progress_is_throttled_to_its_interval():
    buf = io.StringIO()
    bar = LineProgress(total=10**5, desc="diffusion fold 0", unit="step", every_s=3600, stream=buf)
    for _ in range(10**5):
        bar.update(1)
        bar.set_postfix(loss="0.1")  # called every step: no line without line_per_postfix
    assert buf.getvalue() == ""
    bar.every_s = 0.0
    bar.update(1)
    assert buf.getvalue().count("\n") == 1


def test_not_a_terminal_gives_lines_and_disabled_gives_nothing(capsys):
    bar = progress_bar(10, 0, "x", "it")  # pytest's stderr is not a terminal
    assert isinstance(bar, LineProgress)
    assert list(progress_iter(range(3), "y")) == [0, 1, 2]
    off = progress_bar(10, 0, "z", enabled=False)
    off.update(5)
    off.close()
    assert "z:" not in capsys.readouterr().err
