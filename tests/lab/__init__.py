"""Censor lab: a small internet in Linux network namespaces, with real censors.

``agent -- isp -- border -- net``; driven by the scenario table in
``scenarios.toml`` (format: docs/lab-scenarios.md). Entry: ``python -m tests.lab``.
"""
