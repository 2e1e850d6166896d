"""Widgets of the Results section."""
