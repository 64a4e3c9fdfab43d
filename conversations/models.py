"""Conversations and messages (models come with the answers and visitor issues)."""
