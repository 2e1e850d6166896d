"""The app's sections, one module each (Textual modes)."""
