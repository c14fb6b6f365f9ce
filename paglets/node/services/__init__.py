"""The node side of services: the registry of records, lookups here and across the mesh."""
