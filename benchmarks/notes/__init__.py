"""Hand-annotated gold standard and scorer for extraction from clinical notes (issue 7, item 4a)."""
