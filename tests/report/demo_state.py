"""The demo's state, run once per test module: three runs of ``employees``, the last held."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connector.cli.demo import run_demo


@dataclass(frozen=True)
class DemoState:
    directory: Path
    run_ids: tuple[str, ...]

    @classmethod
    def run(cls, directory: Path, rows: int = 300) -> DemoState:
        summaries = run_demo(directory / "demo", rows=rows, log_delay=0.0)
        return cls(directory / "demo", tuple(s.run_id for s in summaries))

    @property
    def state(self) -> Path:
        return self.directory / "state"

    @property
    def flags(self) -> tuple[str, ...]:
        return ("--config", str(self.directory / "sources.yaml"), "--state", str(self.state))

    def report_dir(self, day: int) -> Path:
        """The report folder of the demo's run of day ``day + 1``."""
        return self.state / "reports" / "employees" / self.run_ids[day]
