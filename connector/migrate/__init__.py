"""Migration from other provisioning tools' mapping files to this connector's YAML.

``psd1`` reads a PowerShell data file (the subset ``Import-PowerShellDataFile`` accepts,
plus scriptblocks kept as tokens) without ever running it; ``scriptblock`` parses the
expression shapes CSV2SCIM mappings use; ``csv2scim`` turns a CSV2SCIM
``AttributeMapping.psd1`` into a mapping YAML, checked by the product's own loader.
"""

from __future__ import annotations

from connector.migrate.csv2scim import Translation, Untranslated, import_psd1, translate_psd1

__all__ = ["Translation", "Untranslated", "import_psd1", "translate_psd1"]
