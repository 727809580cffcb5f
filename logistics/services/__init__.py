"""Use cases: one function each, taking a unit of work, raising domain errors, returning values."""
