"""The operator's tools: the ``preview-tokens`` CLI and the signing/origin key admin."""
