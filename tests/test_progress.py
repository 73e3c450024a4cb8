"""Progress reporting: a bar on a terminal, a line per tenth elsewhere (a log is not a terminal)."""
import io
import sys

from steerkit.progress import bar


class _Log(io.StringIO):
    def isatty(self):
        return False


def test_a_log_gets_a_line_per_tenth_not_a_redraw_per_step(monkeypatch):
    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    b = bar(range(1000), desc="MAT-Steer", unit="epoch")
    for i in b:
        b.set_postfix({"loss": f"{i:.3g}"})
    lines = log.getvalue().splitlines()
    assert 10 <= len(lines) <= 11 and "\r" not in log.getvalue()
    assert lines[-1].startswith("MAT-Steer: 1000/1000 epoch") and "loss=999" in lines[-1]


def test_disabled_is_silent_and_still_iterates(monkeypatch):
    log = _Log()
    monkeypatch.setattr(sys, "stderr", log)
    assert list(bar(range(5), enabled=False)) == list(range(5)) and log.getvalue() == ""
    b = bar(total=30, desc="collect", unit="text")
    for _ in range(3):
        b.update(10)
    b.close()
    assert log.getvalue().count("collect:") == 3
