"""The sync engine and its stages: a run moves from a delivered file to a report."""
