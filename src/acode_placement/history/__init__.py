"""The placement history: an append-only audit trail in any SQLAlchemy database."""
