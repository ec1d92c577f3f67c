"""Conformance test suite shipped for store drivers."""
