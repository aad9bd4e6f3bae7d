"""Importing clients and their past sessions and payments from a spreadsheet's CSV."""
