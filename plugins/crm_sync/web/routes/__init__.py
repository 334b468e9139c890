"""One router per resource, each declaring its own access dependency (see ..security)."""
