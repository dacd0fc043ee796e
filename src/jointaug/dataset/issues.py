"""What :func:`jointaug.dataset.validate.validate_dataset` returns: a :class:`Report`
holding its errors and warnings (each an :class:`Issue` naming the rule, the case and
the file) and a summary of what it found.

A module of its own so that the row checks (:mod:`jointaug.dataset.case_checks`) and
the folder checks (:mod:`jointaug.dataset.validate`) both add to it without importing
each other in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Issue:
    rule: str
    message: str
    case: str = ""
    file: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        where = ", ".join(x for x in (f"case {self.case}" if self.case else "", self.file) if x)
        return f"[{self.rule}] {where + ': ' if where else ''}{self.message}"


@dataclass
class Report:
    root: Path
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(
        self, rule: str, message: str, case: str = "", file: str = "", warning: bool = False
    ) -> None:
        issue = Issue(rule, message, case, file, "warning" if warning else "error")
        (self.warnings if warning else self.errors).append(issue)

    def rules(self) -> set[str]:
        return {i.rule for i in self.errors}
