"""Widget settings (models come with the visitor issue)."""
