"""The gate: GT1 validation, trust store, revocations, usage records, gated and gatectl."""
