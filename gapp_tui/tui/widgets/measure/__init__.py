"""Widgets of the Measure section."""
