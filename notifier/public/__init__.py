"""The public face: pages, feeds and self-service subscription."""
