"""LEAP's own PostgreSQL: versioned schema, daily indicator history, staff-read audit log."""
