"""Lab tests skip for a non-root developer, with the reason, and fail under CI."""

from __future__ import annotations

import pytest

from tests.conftest import require_lab


def test_non_root_developer_is_told_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need root"):
        require_lab()


def test_ci_never_skips_lab_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the lab tests"):
        require_lab()


def test_missing_tool_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("tests.conftest.missing_tools", lambda: {"dnsmasq": "dnsmasq-base"})
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install dnsmasq-base"):
        require_lab()
