"""Column lineage of derived datasets, contract inheritance along it, and lineage pictures."""
