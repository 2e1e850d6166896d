"""Widgets of the Partition section."""
