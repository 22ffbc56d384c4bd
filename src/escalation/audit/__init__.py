"""The tamper-evident audit log: the record schema, canonical JSON and the hash chain, totals, verification."""
