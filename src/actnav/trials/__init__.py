"""Clinical trials: records, ingestion, ClinicalTrials.gov client, ACT recognition,
eligibility parsing into criterion trees, and matching against a patient."""
