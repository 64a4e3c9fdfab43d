"""Knowledge bases, sources, documents and chunks (models come with the knowledge issue)."""
