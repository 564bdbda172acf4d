"""Test and benchmark path against the real upstream prAxIs OS (see harness.py, FINDINGS.md)."""
