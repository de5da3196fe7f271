"""Population pre-screening: many patients against every product indication, in partitions."""
