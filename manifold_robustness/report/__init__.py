"""Figures and reports; they read arrays and result stores and write files."""
