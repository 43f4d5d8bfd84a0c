"""Security regression tests: each reproduces a finding of an audit against the real
components, and fails if the hole reopens."""
