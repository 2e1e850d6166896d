"""Widgets of the Models section."""
