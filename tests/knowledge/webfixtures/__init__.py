"""Local HTTP servers and page generators for the web-fetching tests (no internet needed)."""
