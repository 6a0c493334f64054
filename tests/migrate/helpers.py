"""Fixtures of the migration tests: psd1 files in the shapes CSV2SCIM users write."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE_PSD1 = FIXTURES / "AttributeMapping.psd1"
"""Our own file in the shape of CSV2SCIM's Samples/AttributeMapping.psd1."""
CONTRACTOR_PSD1 = FIXTURES / "AttributeMapping.Contractor.psd1"
SCRIPTBLOCKS_PSD1 = FIXTURES / "Scriptblocks.psd1"
UNSUPPORTED_PSD1 = FIXTURES / "Unsupported.psd1"
